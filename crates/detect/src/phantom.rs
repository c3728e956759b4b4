//! A synthetic chest for tests, natively and in the browser: a body of soft tissue on a table,
//! two lungs with vessels, a trachea in the upper slices and nodules where [`NODULES`] says,
//! one of them against the pleura. Integer arithmetic only, so every platform builds the same
//! voxels.

use nodulens_core::Volume;
use nodulens_core::preprocess::synthetic_volume;

/// Voxels and spacing of [`chest`].
pub const DIMS: [usize; 3] = [192, 160, 48];
pub const SPACING: [f64; 3] = [1.0, 1.0, 2.0];

/// Nodule centres (voxel coordinates of [`chest`]) and diameters, mm.
pub const NODULES: [([usize; 3], usize); 4] = [
    ([60, 80, 20], 6),
    ([130, 70, 30], 10),
    ([70, 95, 36], 4),
    // Against the lateral chest wall of the right lung (low x).
    ([29, 80, 24], 14),
];

/// The trachea's centre column and radius (voxels); it runs from slice [`TRACHEA_FROM`] up.
pub const TRACHEA: [usize; 3] = [96, 60, 7];
pub const TRACHEA_FROM: usize = 38;

fn inside_ellipse(i: usize, j: usize, c: [i64; 2], r: [i64; 2]) -> bool {
    let (dx, dy) = (i as i64 - c[0], j as i64 - c[1]);
    dx * dx * r[1] * r[1] + dy * dy * r[0] * r[0] <= r[0] * r[0] * r[1] * r[1]
}

/// The phantom (see the module's description).
pub fn chest() -> Volume {
    synthetic_volume(DIMS, SPACING, [-96.0, -80.0, -48.0], |i, j, k| {
        let (ii, jj, kk) = (i as i64, j as i64, k as i64);
        for (c, d) in NODULES {
            let r2 = (d as i64 * d as i64) / 4;
            let dz = (kk - c[2] as i64) * 2;
            if (ii - c[0] as i64).pow(2) + (jj - c[1] as i64).pow(2) + dz * dz <= r2 {
                return 40;
            }
        }
        if k >= TRACHEA_FROM
            && (ii - TRACHEA[0] as i64).pow(2) + (jj - TRACHEA[1] as i64).pow(2)
                <= (TRACHEA[2] * TRACHEA[2]) as i64
        {
            return -1000;
        }
        let lung = (inside_ellipse(i, j, [58, 80], [32, 48])
            || inside_ellipse(i, j, [134, 80], [32, 48]))
            && (2..46).contains(&k);
        if lung {
            // Vessels: tubes along z every 16 voxels, 2 voxels across.
            if i % 16 < 2 && j % 16 < 2 {
                return 30;
            }
            return -860;
        }
        if inside_ellipse(i, j, [96, 80], [88, 64]) {
            return 20;
        }
        if j >= 150 {
            return 100; // the table
        }
        -1000
    })
}
