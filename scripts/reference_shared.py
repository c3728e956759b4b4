#!/usr/bin/env python3
"""Records pydicom/nibabel readings of the shared real data in tests/fixtures/shared_reference.json,
for the tests that read ../shared/data (maintainers only; needs pydicom numpy nibabel)."""
import glob, json, os, sys, tarfile, tempfile
import numpy as np, pydicom, nibabel as nib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
out = {"scans": {}, "crops": {}}
for scan in sorted(os.listdir(os.path.join(SHARED, "scans"))):
    with tempfile.TemporaryDirectory() as tmp:
        tarfile.open(os.path.join(SHARED, "scans", scan, "dicom.tar.xz")).extractall(tmp)
        ds = [pydicom.dcmread(f) for f in glob.glob(os.path.join(tmp, "dicom", "*.dcm"))]
    iop = np.array(ds[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    ds.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    pos = [float(np.dot(np.array(d.ImagePositionPatient, float), normal)) for d in ds]
    out["scans"][scan] = {
        "dims": [int(ds[0].Columns), int(ds[0].Rows), len(ds)],
        "spacing_mm": [float(ds[0].PixelSpacing[1]), float(ds[0].PixelSpacing[0]), float(np.median(np.diff(pos)))],
        "origin_mm": [float(v) for v in ds[0].ImagePositionPatient],
        "hu_min": float(hu.min()), "hu_max": float(hu.max()), "hu_mean": float(hu.mean()),
        "series_uid": str(ds[0].SeriesInstanceUID),
    }
for name in sorted(os.listdir(os.path.join(SHARED, "lidc-crops", "images")))[:12]:
    img = nib.load(os.path.join(SHARED, "lidc-crops", "images", name))
    a = np.asarray(img.dataobj).astype(np.float64)
    lps = np.diag([-1, -1, 1, 1]) @ img.affine
    out["crops"][name] = {"dims": list(a.shape), "spacing_mm": [float(v) for v in img.header.get_zooms()[:3]],
                          "origin_mm": [float(v) for v in lps[:3, 3]],
                          "hu_min": float(a.min()), "hu_max": float(a.max()), "hu_mean": float(a.mean())}
json.dump(out, open(os.path.join(ROOT, "tests", "fixtures", "shared_reference.json"), "w"), indent=1)
print("recorded", len(out["scans"]), "scans and", len(out["crops"]), "crops")
