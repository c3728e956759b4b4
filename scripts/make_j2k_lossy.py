#!/usr/bin/env python3
"""Rewrites tests/fixtures/dicom/jpeg2000_lossy from tests/fixtures/dicom/explicit_le.

gdcmconv's lossy JPEG 2000 (`--j2k --lossy -q 40`) wrote 150-byte codestreams that OpenJPEG
and GDCM themselves decode to a constant: useless as a fixture. This encodes each slice with
OpenJPEG through Pillow instead (irreversible 9/7 wavelet, 8:1), wraps it as JPEG 2000
(1.2.840.10008.1.2.4.91) with pydicom, checks that OpenJPEG reads it back within a few HU, and
records the tolerance in tests/fixtures/reference.json. Needs pydicom, numpy and Pillow (PyPI).
"""
import io
import json
import os

import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.uid import JPEG2000

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "tests", "fixtures", "dicom", "explicit_le")
DST = os.path.join(ROOT, "tests", "fixtures", "dicom", "jpeg2000_lossy")

errors = []
for name in sorted(os.listdir(SRC)):
    ds = pydicom.dcmread(os.path.join(SRC, name))
    assert ds.PixelRepresentation == 0, "the fixture series is unsigned"
    stored = ds.pixel_array.astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(stored).save(
        buf, format="JPEG2000", codec="j2k", irreversible=True,
        quality_mode="rates", quality_layers=[8])
    codestream = buf.getvalue()
    back = np.array(Image.open(io.BytesIO(codestream))).astype(np.int32)
    errors.append(float(np.abs(back - stored.astype(np.int32)).mean()))
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000
    ds.LossyImageCompression = "01"
    ds.save_as(os.path.join(DST, name), enforce_file_format=True)
    again = pydicom.dcmread(os.path.join(DST, name))
    frame = b"".join(next(generate_fragmented_frames(again.PixelData)))
    assert frame[:len(codestream)] == codestream  # fragments are padded to an even length
print("mean |OpenJPEG − original| per slice:", [round(e, 2) for e in errors])

ref_path = os.path.join(ROOT, "tests", "fixtures", "reference.json")
reference = json.load(open(ref_path))
entry = reference["dicom/jpeg2000_lossy"]
entry["mean_tolerance"] = 5.0
json.dump(reference, open(ref_path, "w"), indent=1)
open(ref_path, "a").write("\n")
