//! Slices through a volume for display: axial, coronal, sagittal, and window/level.
//! Pure, so the browser viewer and native tests share it.

use serde::{Deserialize, Serialize};

use crate::Volume;

/// Which plane a slice lies in, in grid terms: axial ⟂ slices, coronal ⟂ rows,
/// sagittal ⟂ columns (exact for the usual axial acquisitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    /// The grid axis the plane is perpendicular to.
    pub fn normal_axis(self) -> usize {
        match self {
            Plane::Axial => 2,
            Plane::Coronal => 1,
            Plane::Sagittal => 0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Plane::Axial => "Axial",
            Plane::Coronal => "Coronal",
            Plane::Sagittal => "Sagittal",
        }
    }
}

/// A 2-D cut: `width × height` values, and each pixel's size in mm.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub width: usize,
    pub height: usize,
    pub pixel_mm: [f64; 2],
    pub values: Vec<i16>,
}

/// Number of slices along a plane's normal.
pub fn slice_count(volume: &Volume, plane: Plane) -> usize {
    volume.dims()[plane.normal_axis()]
}

/// Grid coordinates `(i, j, k)` of pixel `(u, v)` of slice `index` in `plane`.
/// Coronal and sagittal images put the head at the top, so their rows run against k.
pub fn pixel_to_voxel(
    volume: &Volume,
    plane: Plane,
    index: usize,
    u: usize,
    v: usize,
) -> [usize; 3] {
    let top = volume.dims()[2].saturating_sub(1);
    match plane {
        Plane::Axial => [u, v, index],
        Plane::Coronal => [u, index, top.saturating_sub(v)],
        Plane::Sagittal => [index, u, top.saturating_sub(v)],
    }
}

/// Extracts slice `index` (clamped into range) of `plane`.
pub fn extract(volume: &Volume, plane: Plane, index: usize) -> Slice {
    let [nx, ny, nz] = volume.dims();
    let index = index.min(slice_count(volume, plane).saturating_sub(1));
    let (width, height, pixel_mm) = match plane {
        Plane::Axial => (nx, ny, [volume.spacing()[0], volume.spacing()[1]]),
        Plane::Coronal => (nx, nz, [volume.spacing()[0], volume.spacing()[2]]),
        Plane::Sagittal => (ny, nz, [volume.spacing()[1], volume.spacing()[2]]),
    };
    let mut values = Vec::with_capacity(width * height);
    match plane {
        Plane::Axial => {
            values.extend_from_slice(&volume.voxels()[index * nx * ny..(index + 1) * nx * ny])
        }
        Plane::Coronal => {
            for v in 0..nz {
                let k = nz - 1 - v;
                let start = nx * (index + ny * k);
                values.extend_from_slice(&volume.voxels()[start..start + nx]);
            }
        }
        Plane::Sagittal => {
            for v in 0..nz {
                let k = nz - 1 - v;
                values.extend((0..ny).map(|j| volume.voxels()[index + nx * (j + ny * k)]));
            }
        }
    }
    Slice {
        width,
        height,
        pixel_mm,
        values,
    }
}

/// A display window in the volume's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub width: f64,
    pub level: f64,
}

impl Window {
    pub const LUNG: Window = Window {
        width: 1500.0,
        level: -600.0,
    };
    pub const MEDIASTINUM: Window = Window {
        width: 350.0,
        level: 50.0,
    };
    pub const BONE: Window = Window {
        width: 2000.0,
        level: 500.0,
    };

    /// Grey level 0–255 of a value (DICOM's linear VOI function, simplified).
    #[inline]
    pub fn grey(&self, value: i16) -> u8 {
        let width = self.width.max(1.0);
        let low = self.level - width / 2.0;
        let t = (f64::from(value) - low) / width;
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }

    /// A window covering a range (for grey-level stacks).
    pub fn spanning(min: i16, max: i16) -> Window {
        let width = (f64::from(max) - f64::from(min)).max(1.0);
        Window {
            width,
            level: f64::from(min) + width / 2.0,
        }
    }
}

/// RGBA pixels (for a canvas `ImageData`) of a slice under a window, through a lookup
/// table so the cost per pixel is one index.
pub fn render_rgba(slice: &Slice, window: Window, out: &mut Vec<u8>) {
    let lut: Vec<u8> = (i16::MIN..=i16::MAX).map(|v| window.grey(v)).collect();
    out.clear();
    out.reserve(slice.values.len() * 4);
    for &v in &slice.values {
        let g = lut[(i32::from(v) - i32::from(i16::MIN)) as usize];
        out.extend_from_slice(&[g, g, g, 255]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, IntensityUnits, Metadata, VolumeHeader};

    fn numbered() -> Volume {
        Volume::new(
            VolumeHeader {
                format: Format::Nifti,
                dims: [4, 3, 2],
                spacing: [1.0, 2.0, 3.0],
                origin: [0.0; 3],
                direction: crate::volume::IDENTITY,
                units: IntensityUnits::Hounsfield,
                metadata: Metadata::default(),
                warnings: vec![],
            },
            (0..24).collect(),
        )
        .expect("valid test volume")
    }

    #[test]
    fn slices_match_voxel_lookup() {
        let v = numbered();
        for plane in Plane::ALL {
            for index in 0..slice_count(&v, plane) {
                let s = extract(&v, plane, index);
                assert_eq!(s.values.len(), s.width * s.height);
                for y in 0..s.height {
                    for x in 0..s.width {
                        let [i, j, k] = pixel_to_voxel(&v, plane, index, x, y);
                        assert_eq!(
                            Some(s.values[x + s.width * y]),
                            v.get(i, j, k),
                            "{plane:?} {index} ({x},{y})"
                        );
                    }
                }
            }
        }
        assert_eq!(extract(&v, Plane::Sagittal, 0).pixel_mm, [2.0, 3.0]);
    }

    #[test]
    fn windows() {
        assert_eq!(Window::LUNG.grey(-1350), 0);
        assert_eq!(Window::LUNG.grey(150), 255);
        assert_eq!(Window::LUNG.grey(-600), 128);
        let mut rgba = Vec::new();
        render_rgba(
            &extract(&numbered(), Plane::Axial, 0),
            Window::spanning(0, 11),
            &mut rgba,
        );
        assert_eq!(rgba.len(), 48);
        assert_eq!(&rgba[..4], &[0, 0, 0, 255]);
        assert_eq!(&rgba[44..], &[255, 255, 255, 255]);
    }
}
