//! Binary image operations on one slice at a time (`nx × ny`, row by row): flood fills,
//! connected components and a Euclidean distance transform in millimetres, which gives
//! closing with a disc of any radius at a cost independent of the radius.

/// Far enough to be "no set pixel at all" in squared millimetres, small enough not to lose
/// precision in the parabola intersections.
const FAR: f64 = 1e12;

/// Squared distance (mm²) from each pixel to the nearest set pixel of `mask`
/// (Felzenszwalb & Huttenlocher's two-pass transform).
pub fn squared_distance(mask: &[bool], nx: usize, ny: usize, spacing: [f64; 2]) -> Vec<f64> {
    let mut d: Vec<f64> = mask.iter().map(|&m| if m { 0.0 } else { FAR }).collect();
    let n = nx.max(ny);
    let mut line = vec![0.0; n];
    let mut out = vec![0.0; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0.0; n + 1];
    for j in 0..ny {
        line[..nx].copy_from_slice(&d[nx * j..nx * (j + 1)]);
        distance_1d(&line[..nx], &mut out[..nx], &mut v, &mut z, spacing[0]);
        d[nx * j..nx * (j + 1)].copy_from_slice(&out[..nx]);
    }
    for i in 0..nx {
        for j in 0..ny {
            line[j] = d[i + nx * j];
        }
        distance_1d(&line[..ny], &mut out[..ny], &mut v, &mut z, spacing[1]);
        for j in 0..ny {
            d[i + nx * j] = out[j];
        }
    }
    d
}

/// [`squared_distance`] in 3-D: squared distance (mm²) from each voxel of a `dims` grid
/// (row by row, slice by slice) to the nearest set voxel, with anisotropic `spacing`.
pub fn squared_distance_3d(mask: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let [nx, ny, nz] = dims;
    let mut d: Vec<f64> = mask.iter().map(|&m| if m { 0.0 } else { FAR }).collect();
    let n = nx.max(ny).max(nz);
    let mut line = vec![0.0; n];
    let mut out = vec![0.0; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0.0; n + 1];
    // One pass per axis: `len` samples `stride` apart from each start.
    let mut pass = |d: &mut Vec<f64>, len: usize, stride: usize, starts: &[usize], w: f64| {
        for &start in starts {
            for q in 0..len {
                line[q] = d[start + q * stride];
            }
            distance_1d(&line[..len], &mut out[..len], &mut v, &mut z, w);
            for q in 0..len {
                d[start + q * stride] = out[q];
            }
        }
    };
    let area = nx * ny;
    let starts_x: Vec<usize> = (0..ny * nz).map(|r| r * nx).collect();
    pass(&mut d, nx, 1, &starts_x, spacing[0]);
    let starts_y: Vec<usize> = (0..nz)
        .flat_map(|k| (0..nx).map(move |i| i + area * k))
        .collect();
    pass(&mut d, ny, nx, &starts_y, spacing[1]);
    let starts_z: Vec<usize> = (0..area).collect();
    pass(&mut d, nz, area, &starts_z, spacing[2]);
    d
}

/// The lower envelope of parabolas rooted at `f` (one row or column, `w` mm apart).
fn distance_1d(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64], w: f64) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let pos = |q: usize| q as f64 * w;
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        loop {
            let p = v[k];
            let s =
                ((f[q] + pos(q) * pos(q)) - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            if s <= z[k] && k > 0 {
                k -= 1;
                continue;
            }
            if s <= z[k] {
                // k == 0: the new parabola replaces the first.
                v[0] = q;
                z[1] = f64::INFINITY;
            } else {
                k += 1;
                v[k] = q;
                z[k] = s;
                z[k + 1] = f64::INFINITY;
            }
            break;
        }
    }
    k = 0;
    for (q, out) in d.iter_mut().enumerate().take(n) {
        while z[k + 1] < pos(q) {
            k += 1;
        }
        let dx = pos(q) - pos(v[k]);
        *out = dx * dx + f[v[k]];
    }
}

/// Closing with a disc of `radius_mm`: fills bays and notches narrower than the disc.
pub fn close(mask: &[bool], nx: usize, ny: usize, spacing: [f64; 2], radius_mm: f64) -> Vec<bool> {
    let r2 = radius_mm * radius_mm;
    let dilated: Vec<bool> = squared_distance(mask, nx, ny, spacing)
        .into_iter()
        .map(|d| d <= r2)
        .collect();
    let outside: Vec<bool> = dilated.iter().map(|&m| !m).collect();
    // A slice with nothing outside the dilation has nothing to erode from.
    if !outside.iter().any(|&o| o) {
        return dilated;
    }
    squared_distance(&outside, nx, ny, spacing)
        .into_iter()
        .map(|d| d > r2)
        .collect()
}

/// The convex hull of `mask`'s set pixels, filled (pixel centres on or inside the hull).
pub fn convex_hull(mask: &[bool], nx: usize, ny: usize) -> Vec<bool> {
    // The extreme pixels of each row are enough: every other pixel lies between them.
    let mut points: Vec<(i64, i64)> = Vec::new();
    for j in 0..ny {
        let row = &mask[nx * j..nx * (j + 1)];
        if let (Some(first), Some(last)) =
            (row.iter().position(|&m| m), row.iter().rposition(|&m| m))
        {
            points.push((first as i64, j as i64));
            if last != first {
                points.push((last as i64, j as i64));
            }
        }
    }
    let mut out = vec![false; nx * ny];
    if points.len() < 3 {
        points
            .iter()
            .for_each(|&(i, j)| out[i as usize + nx * j as usize] = true);
        return out;
    }
    points.sort();
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    // Andrew's monotone chain: lower then upper hull, counter-clockwise.
    let mut hull: Vec<(i64, i64)> = Vec::new();
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Vec<(i64, i64)> = if pass == 0 {
            points.clone()
        } else {
            points.iter().rev().copied().collect()
        };
        for p in ordered {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    // A pixel is inside when it is on the left of (or on) every edge.
    let (y0, y1) = (
        points.iter().map(|p| p.1).min().unwrap_or(0),
        points.iter().map(|p| p.1).max().unwrap_or(0),
    );
    let (x0, x1) = (
        points.iter().map(|p| p.0).min().unwrap_or(0),
        points.iter().map(|p| p.0).max().unwrap_or(0),
    );
    for j in y0..=y1 {
        for i in x0..=x1 {
            let inside =
                (0..hull.len()).all(|e| cross(hull[e], hull[(e + 1) % hull.len()], (i, j)) >= 0);
            if inside {
                out[i as usize + nx * j as usize] = true;
            }
        }
    }
    out
}

/// Calls `visit` with each face neighbour of voxel `at` in a grid of `dims` (row by row, slice
/// by slice): four in-plane, and the two along z where there is more than one slice.
pub fn for_each_neighbour(at: usize, dims: [usize; 3], mut visit: impl FnMut(usize)) {
    let [nx, ny, nz] = dims;
    let area = nx * ny;
    let (i, j) = (at % nx, (at / nx) % ny);
    if i > 0 {
        visit(at - 1);
    }
    if i + 1 < nx {
        visit(at + 1);
    }
    if j > 0 {
        visit(at - nx);
    }
    if j + 1 < ny {
        visit(at + nx);
    }
    if at >= area {
        visit(at - area);
    }
    if at + area < area * nz {
        visit(at + area);
    }
}

/// Pixels where `passable` holds that are 4-connected to the border through such pixels.
pub fn reach_from_border(passable: &[bool], nx: usize, ny: usize) -> Vec<bool> {
    let mut reached = vec![false; nx * ny];
    let mut stack = Vec::new();
    // Each pixel is marked when it is pushed, so it is pushed at most once.
    let visit = |at: usize, reached: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if passable[at] && !reached[at] {
            reached[at] = true;
            stack.push(at);
        }
    };
    for i in 0..nx {
        visit(i, &mut reached, &mut stack);
        visit(i + nx * (ny - 1), &mut reached, &mut stack);
    }
    for j in 0..ny {
        visit(nx * j, &mut reached, &mut stack);
        visit(nx - 1 + nx * j, &mut reached, &mut stack);
    }
    while let Some(at) = stack.pop() {
        for_each_neighbour(at, [nx, ny, 1], |n| visit(n, &mut reached, &mut stack));
    }
    reached
}

/// Sets the holes of `mask`: unset pixels that the border cannot reach through unset pixels.
pub fn fill_holes(mask: &mut [bool], nx: usize, ny: usize) {
    let background: Vec<bool> = mask.iter().map(|&m| !m).collect();
    let outside = reach_from_border(&background, nx, ny);
    for (m, o) in mask.iter_mut().zip(outside) {
        *m = !o;
    }
}

/// The 4-connected components of `mask`, each as its pixel indices, in raster order of their
/// first pixel.
pub fn components(mask: &[bool], nx: usize, ny: usize) -> Vec<Vec<usize>> {
    let mut seen = vec![false; nx * ny];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..nx * ny {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut pixels = Vec::new();
        seen[start] = true;
        stack.push(start);
        while let Some(at) = stack.pop() {
            pixels.push(at);
            for_each_neighbour(at, [nx, ny, 1], |n| {
                if mask[n] && !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            });
        }
        out.push(pixels);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let nx = rows[0].len();
        let mask = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (mask, nx, rows.len())
    }

    #[test]
    fn distances_are_euclidean_in_millimetres() {
        let (mask, nx, ny) = image(&[".....", ".....", "..#..", ".....", "....."]);
        let d = squared_distance(&mask, nx, ny, [0.5, 2.0]);
        assert_eq!(d[2 + nx * 2], 0.0);
        assert_eq!(d[4 + nx * 2], 1.0); // two pixels of 0.5 mm
        assert_eq!(d[2 + nx * 4], 16.0); // two pixels of 2 mm
        assert_eq!(d[4 + nx * 4], 17.0);
        let empty = vec![false; 4];
        assert!(
            squared_distance(&empty, 2, 2, [1.0, 1.0])
                .iter()
                .all(|&v| v >= FAR)
        );
    }

    #[test]
    fn distances_in_3d_follow_each_axis_spacing() {
        let dims = [5, 5, 5];
        let mut mask = vec![false; 125];
        mask[2 + 5 * 2 + 25 * 2] = true;
        let d = squared_distance_3d(&mask, dims, [0.5, 1.0, 2.0]);
        assert_eq!(d[2 + 5 * 2 + 25 * 2], 0.0);
        assert_eq!(d[4 + 5 * 2 + 25 * 2], 1.0);
        assert_eq!(d[2 + 5 * 4 + 25 * 2], 4.0);
        assert_eq!(d[2 + 5 * 2 + 25 * 4], 16.0);
        assert_eq!(d[4 + 5 * 4 + 25 * 4], 21.0);
    }

    #[test]
    fn closing_fills_a_notch_narrower_than_the_disc_only() {
        let (mask, nx, ny) = image(&[
            "..............",
            "..............",
            "..##########..",
            "..####..####..",
            "..####..####..",
            "..##########..",
            "..............",
            "..............",
        ]);
        let closed = close(&mask, nx, ny, [1.0, 1.0], 1.5);
        assert!(closed[6 + nx * 3] && closed[7 + nx * 4]);
        assert!(!closed[0] && !closed[nx * 8 - 1] && !closed[1 + nx]);
        let (notch, nx, ny) = image(&["#....#", "#....#", "######"]);
        let small = close(&notch, nx, ny, [1.0, 1.0], 1.0);
        assert!(!small[2 + nx]);
    }

    #[test]
    fn holes_are_filled_and_components_counted() {
        let (mut mask, nx, ny) = image(&["#####..", "#...#..", "#####.#", ".......", "##....#"]);
        assert_eq!(components(&mask, nx, ny).len(), 4);
        fill_holes(&mut mask, nx, ny);
        assert!(mask[1 + nx] && mask[3 + nx]);
        assert!(!mask[5]);
    }
}
