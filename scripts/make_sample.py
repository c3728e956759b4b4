#!/usr/bin/env python3
"""Builds static/sample/LIDC-IDRI-0006.nii.gz, the scan the app opens with one click.

Maintainers only (needs ../shared/data and `pip install pydicom numpy nibabel`).
The whole series at native resolution, cropped in-plane to the body (air outside it
carries nothing), stored as int16 HU in NIfTI-1 with the exact DICOM geometry.
"""
import glob, sys, tarfile, tempfile, os
import numpy as np, pydicom, nibabel as nib  # and scipy

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/scans/LIDC-IDRI-0006/dicom.tar.xz"
out = sys.argv[2] if len(sys.argv) > 2 else "static/sample/LIDC-IDRI-0006.nii.gz"
with tempfile.TemporaryDirectory() as tmp:
    tarfile.open(src).extractall(tmp)
    ds = [pydicom.dcmread(f) for f in glob.glob(os.path.join(tmp, "dicom", "*.dcm"))]
iop = np.array(ds[0].ImageOrientationPatient, float)
row, col = iop[:3], iop[3:]
normal = np.cross(row, col)
ds.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
hu = np.stack([d.pixel_array.astype(np.int32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
hu = np.clip(np.round(hu), -1024, 3071).astype(np.int16)  # [k, j, i]; below -1024 is only the scanner's out-of-field fill
# Body = the largest connected region above -400 HU in each slice, holes (lungs) filled;
# outside it (table, blanket, air) becomes -1024 so it compresses to nothing.
from scipy import ndimage
for k in range(hu.shape[0]):
    labels, n = ndimage.label(hu[k] > -400)
    if n:
        largest = 1 + int(np.argmax(ndimage.sum(np.ones_like(labels), labels, range(1, n + 1))))
        inside = ndimage.binary_fill_holes(ndimage.binary_dilation(labels == largest, iterations=3))
        hu[k][~inside] = -1024
body = (hu > -1024).any(axis=0)
# Keep only the slices that hold lung (air inside the body) plus a margin: the sample is
# for lung screening, and the abdomen below would push it past the 25 MB budget.
lung_area = ((hu < -400) & (hu > -1024)).sum(axis=(1, 2))
with_lung = np.nonzero(lung_area > 8000)[0]
k0, k1 = max(with_lung.min() - 4, 0), min(with_lung.max() + 5, hu.shape[0])
hu, ds = hu[k0:k1], ds[k0:k1]
js, is_ = np.nonzero(body)
margin = 8
j0, j1 = max(js.min() - margin, 0), min(js.max() + margin + 1, hu.shape[1])
i0, i1 = max(is_.min() - margin, 0), min(is_.max() + margin + 1, hu.shape[2])
crop = hu[:, j0:j1, i0:i1]
dy, dx = (float(v) for v in ds[0].PixelSpacing)
positions = [np.dot(np.array(d.ImagePositionPatient, float), normal) for d in ds]
dz = float(np.median(np.diff(positions)))
origin = np.array(ds[0].ImagePositionPatient, float) + row * dx * i0 + col * dy * j0
lps = np.eye(4)
lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * dx, col * dy, normal * dz, origin
ras = np.diag([-1, -1, 1, 1]) @ lps
img = nib.Nifti1Image(np.transpose(crop, (2, 1, 0)), ras)  # NIfTI is [i, j, k]
img.header.set_data_dtype(np.int16)
img.set_sform(ras, code=1)
img.set_qform(ras, code=1)
img.header["descrip"] = b"LIDC-IDRI-0006, CC BY 3.0, TCIA"
raw = out[:-3]
nib.save(img, raw)
import gzip, shutil
with open(raw, "rb") as f, gzip.open(out, "wb", compresslevel=9) as g:
    shutil.copyfileobj(f, g)
os.remove(raw)
print(out, crop.shape[::-1], os.path.getsize(out), "bytes; crop i", i0, i1, "j", j0, j1, "k", k0, k1)
