#!/usr/bin/env python3
"""The same decode as `cargo bench -p nodulens-core` with pydicom + numpy: read every file of
a series, sort by position along the slice normal, apply the modality rescale, stack into
one int16 HU volume. Prints the median of 7 runs after a warm-up."""
import glob, sys, time
import numpy as np, pydicom

folder = sys.argv[1]
files = sorted(glob.glob(folder + "/*"))


def decode():
    ds = [pydicom.dcmread(f) for f in files]
    iop = np.array(ds[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    ds.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    vol = np.empty((len(ds), ds[0].Rows, ds[0].Columns), np.int16)
    for k, d in enumerate(ds):
        vol[k] = np.clip(np.round(d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)), -32768, 32767)
    return vol


vol = decode()
times = []
for _ in range(7):
    t = time.perf_counter(); decode(); times.append(time.perf_counter() - t)
times.sort()
print(f"pydicom {pydicom.__version__} numpy {np.__version__}: {vol.shape[0]} slices; median {times[3]*1e3:.1f} ms (min {times[0]*1e3:.1f})")
print(f"PYDICOM_DECODE_MS={times[3]*1e3:.3f}")
