//! Lung-RADS's juxtapleural rule makes a solid nodule under 10 mm that lies against the pleura
//! (costal, mediastinal or diaphragmatic) with a smooth margin, oval, lentiform or triangular,
//! category 2. What the image tells here is the first half: whether the finding lies on the
//! pleura. Whether its margin is smooth it does not tell reliably at this size (see
//! `nodulens eval-measurement`), so the category stays by size and the rule's text says that a
//! reader may apply the juxtapleural rule.
//!
//! - **The wall**: dense tissue in the finding's box outside the lung mask (which ends at the
//!   pleura and holds nodules against it, vessels, bronchi and cavity walls), where it is
//!   thick enough somewhere to hold a ball of [`WALL_RADIUS_MM`]: the chest wall, mediastinum
//!   or diaphragm. The segmentation keeps a cap of it with a nodule on the wall; the rest of
//!   the finding is the nodule proper.
//! - **On the pleura**: a broad share of the nodule proper's surface touches the wall.
//!
//! Fissures are not seen at this resolution and noise: a perifissural nodule is not marked.

use nodulens_core::Volume;

use crate::lung::LungMask;
use crate::morphology::{for_each_neighbour, squared_distance_3d};
use crate::segment::Segmentation;

/// Radius (mm) of a ball that fits in the wall and not in a vessel beside a nodule < 10 mm.
pub const WALL_RADIUS_MM: f64 = 5.0;
/// Share of the nodule proper's exposed faces that must touch the wall (a 7 mm ball sunk
/// 1 mm into it: 0.13; a third of its surface on the wall for a hemisphere).
pub const MIN_CONTACT: f64 = 0.10;
/// Fewer dense faces than this share around the finding: nothing is attached, no wall to look
/// for (most candidates; it spares them the lung mask look-ups and two distance transforms).
const MIN_ATTACHED: f64 = 0.05;

/// How a finding sits against the pleura.
#[derive(Debug, Clone, PartialEq)]
pub struct PleuralContact {
    /// Share of the nodule proper's exposed faces (inside the finding's box) on the wall.
    pub contact: f64,
    /// The nodule proper (the finding less the wall, in the finding's box) where the finding
    /// holds some of the wall; `None` where it holds none. (Whether it is the nodule, or the
    /// rim of a mass the lung mask left out, is [`crate::measure`]'s to decide.)
    pub nodule: Option<Vec<bool>>,
}

impl PleuralContact {
    /// Against the pleura.
    pub fn on_pleura(&self) -> bool {
        self.contact >= MIN_CONTACT
    }
}

/// The finding `seg`'s contact with the pleura, in `seg`'s box of `volume` (dense: above the
/// threshold the finding was cut at) whose lungs are `lungs`.
pub fn pleural_contact(volume: &Volume, seg: &Segmentation, lungs: &LungMask) -> PleuralContact {
    let dims = seg.dims();
    let [nx, ny, nz] = dims;
    let o = seg.origin();
    let inside = seg.mask();
    let source = |at: usize| {
        let v = [at % nx, (at / nx) % ny, at / (nx * ny)];
        [0, 1, 2].map(|a| (o[a] + v[a]) as f64)
    };
    let mut dense = vec![false; inside.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let at = i + nx * (j + ny * k);
                let hu = volume.voxels()[volume.index(o[0] + i, o[1] + j, o[2] + k)];
                dense[at] = inside[at] || f32::from(hu) > seg.threshold_hu;
            }
        }
    }
    let none = PleuralContact {
        contact: 0.0,
        nodule: None,
    };
    // Most candidates have nothing attached: no wall to look for.
    if exposed_share(inside, dims, &dense) < MIN_ATTACHED {
        return none;
    }
    // The wall: dense voxels outside the lungs (the mask ends at the pleura and holds
    // nodules against it) where the wall ball fits, and what it covers there (an opening):
    // not a thin vessel or a sliver of the mask's edge.
    let outside: Vec<bool> = (0..dense.len())
        .map(|at| dense[at] && !lungs.contains_voxel(source(at)))
        .collect();
    if !outside.iter().any(|&w| w) {
        return none;
    }
    let spacing = volume.spacing();
    let r2 = WALL_RADIUS_MM * WALL_RADIUS_MM;
    let not_outside: Vec<bool> = outside.iter().map(|&w| !w).collect();
    let centres: Vec<bool> = squared_distance_3d(&not_outside, dims, spacing)
        .into_iter()
        .map(|d| d >= r2)
        .collect();
    if !centres.iter().any(|&c| c) {
        return none;
    }
    let wall: Vec<bool> = squared_distance_3d(&centres, dims, spacing)
        .into_iter()
        .zip(&outside)
        .map(|(d, &o)| o && d <= r2)
        .collect();
    let nodule: Vec<bool> = inside.iter().zip(&wall).map(|(&m, &w)| m && !w).collect();
    PleuralContact {
        contact: exposed_share(&nodule, dims, &wall),
        nodule: wall
            .iter()
            .zip(inside)
            .any(|(&w, &m)| w && m)
            .then_some(nodule),
    }
}

/// Share of `mask`'s exposed faces (to voxels outside it, in the box) that touch `touched`.
fn exposed_share(mask: &[bool], dims: [usize; 3], touched: &[bool]) -> f64 {
    let (mut exposed, mut touching) = (0usize, 0usize);
    for at in (0..mask.len()).filter(|&at| mask[at]) {
        for_each_neighbour(at, dims, |n| {
            if !mask[n] {
                exposed += 1;
                touching += usize::from(touched[n]);
            }
        });
    }
    touching as f64 / exposed.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment;
    use nodulens_core::preprocess::synthetic_volume;

    const SPACING: [f64; 3] = [0.7, 0.7, 1.0];

    /// Lung at −850 HU with a chest wall (+40 HU) for x ≥ `wall_x` mm, and what `nodule` says
    /// is dense (+30 HU) at point p (mm, origin at the volume's centre).
    fn chest(wall_x: f64, nodule: impl Fn([f64; 3]) -> bool) -> Volume {
        let dims = [80, 80, 40];
        let origin = [-28.0, -28.0, -20.0];
        synthetic_volume(dims, SPACING, origin, |i, j, k| {
            let p = [
                origin[0] + i as f64 * SPACING[0],
                origin[1] + j as f64 * SPACING[1],
                origin[2] + k as f64 * SPACING[2],
            ];
            if p[0] >= wall_x {
                40
            } else if nodule(p) {
                30
            } else {
                -850
            }
        })
    }

    fn ball(radius: f64) -> impl Fn([f64; 3]) -> bool {
        move |p| p.iter().map(|c| c * c).sum::<f64>() <= radius * radius
    }

    fn contact_at(volume: &Volume) -> PleuralContact {
        let seg = segment(volume, [0.0, 0.0, 0.0]).expect("segmented");
        pleural_contact(volume, &seg, &LungMask::for_crop(volume))
    }

    #[test]
    fn a_nodule_sunk_into_the_wall_is_on_the_pleura() {
        // A 7 mm ball whose centre lies 2 mm from the wall: 1.5 mm of it in the pleura.
        let c = contact_at(&chest(2.0, ball(3.5)));
        assert!(c.on_pleura(), "{c:?}");
        // Clear of the wall (1.5 mm of lung between): not on it.
        let clear = contact_at(&chest(5.0, ball(3.5)));
        assert!(!clear.on_pleura(), "{clear:?}");
    }

    #[test]
    fn a_nodule_on_the_wall_is_measured_without_the_wall() {
        let volume = chest(2.0, ball(3.5));
        let seg = segment(&volume, [0.0, 0.0, 0.0]).expect("segmented");
        let lungs = LungMask::for_crop(&volume);
        let whole = crate::measure::measure(&volume, &seg, None);
        let proper = crate::measure::measure(&volume, &seg, Some(&lungs));
        // The segmentation holds a cap of wall; without it the 7 mm ball (less its 1.5 mm in
        // the wall, on its largest section) is left.
        assert!(whole.diameter_mm > 9.0, "whole {}", whole.diameter_mm);
        assert!(
            (5.5..=7.5).contains(&proper.diameter_mm),
            "proper {}",
            proper.diameter_mm
        );
        assert!(proper.volume_mm3 < 0.6 * whole.volume_mm3);
        assert!(proper.on_pleura);
        // Centre and slices stay the segmentation's (the models' patch does not move).
        assert_eq!(proper.center_mm, whole.center_mm);
        assert_eq!(proper.slices, whole.slices);
    }

    #[test]
    fn a_nodule_in_the_lung_or_on_a_vessel_is_not() {
        let free = contact_at(&chest(20.0, ball(3.5)));
        assert!(!free.on_pleura(), "{free:?}");
        assert_eq!(free.contact, 0.0);
        // A 1.5 mm radius vessel through the ball: touched, but thin.
        let vessel = ball(3.5);
        let on_vessel = contact_at(&chest(20.0, move |p| {
            vessel(p) || p[1] * p[1] + p[2] * p[2] <= 1.5 * 1.5
        }));
        assert!(!on_vessel.on_pleura(), "{on_vessel:?}");
    }

    #[test]
    fn a_thick_structure_inside_the_lungs_is_not_the_wall() {
        // A 7 mm ball on a 16 mm one (thick enough for the wall ball) that the lung surrounds,
        // as a big vessel or a cavity's wall: the lung mask holds it, so it is not the pleura.
        let (small, big) = (ball(3.5), ball(8.0));
        let volume = chest(25.0, move |p| small(p) || big([p[0] + 10.5, p[1], p[2]]));
        let c = contact_at(&volume);
        assert_eq!(c.contact, 0.0, "{c:?}");
        assert!(c.nodule.is_none());
        // Outside the lungs (no mask at all), the same structure is wall.
        let seg = segment(&volume, [0.0, 0.0, 0.0]).expect("segmented");
        let no_lungs =
            pleural_contact(&volume, &seg, &LungMask::for_crop(&chest(-30.0, ball(0.0))));
        assert!(no_lungs.on_pleura(), "{no_lungs:?}");
    }

    #[test]
    fn a_mass_on_the_wall_is_measured_whole() {
        // A 24 mm half ball on the wall: the lung mask leaves it out (a bump, not a bay), so
        // all of it is "wall"; what is left inside the mask is a rim, not the finding.
        let volume = chest(0.0, |p| p.iter().map(|c| c * c).sum::<f64>() <= 12.0 * 12.0);
        let seg = segment(&volume, [-6.0, 0.0, 0.0]).expect("segmented");
        let lungs = LungMask::for_crop(&volume);
        let whole = crate::measure::measure(&volume, &seg, None);
        let with_lungs = crate::measure::measure(&volume, &seg, Some(&lungs));
        assert!(whole.diameter_mm > 15.0, "whole {}", whole.diameter_mm);
        assert_eq!(with_lungs.diameter_mm, whole.diameter_mm);
        assert_eq!(with_lungs.volume_mm3, whole.volume_mm3);
    }
}
