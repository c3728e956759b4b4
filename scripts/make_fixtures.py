#!/usr/bin/env python3
"""Builds the small committed test fixtures under tests/fixtures and tests/malformed.

Maintainers only: needs ../shared/data, `pip install pydicom numpy nibabel pillow`, and
Debian's dcmtk + libgdcm-tools (independent DICOM encoders, so our decoder is checked
against someone else's writer). Reference values are computed here with numpy from the
source pixels, never from our own reader.
"""
import copy, glob, gzip, io, json, os, shutil, struct, subprocess, sys, tarfile, tempfile, zipfile, zlib
import numpy as np, pydicom, nibabel as nib
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
FIX = os.path.join(ROOT, "tests", "fixtures")
BAD = os.path.join(ROOT, "tests", "malformed")
for d in (FIX, BAD):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

tmp = tempfile.mkdtemp()
tarfile.open(os.path.join(SHARED, "scans", "LIDC-IDRI-0006", "dicom.tar.xz")).extractall(tmp)
slices = [pydicom.dcmread(f) for f in glob.glob(os.path.join(tmp, "dicom", "*.dcm"))]
slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
# Five slices through the reference nodule (z = -122 mm), cropped to 96x96 around it.
ks = [i for i, d in enumerate(slices) if abs(float(d.ImagePositionPatient[2]) + 122.0) < 6.5][:5]
I0, J0, N = 300, 320, 96
base = []
for k in ks:
    d = copy.deepcopy(slices[k])
    px = d.pixel_array[J0:J0 + N, I0:I0 + N].astype(np.int32)
    hu = px * float(d.RescaleSlope) + float(d.RescaleIntercept)
    stored = np.clip(hu + 1024, 0, 4095).astype(np.uint16)  # 12-bit unsigned, the common CT storage
    dy, dx = (float(v) for v in d.PixelSpacing)
    ipp = [float(v) for v in d.ImagePositionPatient]
    d.ImagePositionPatient = [ipp[0] + I0 * dx, ipp[1] + J0 * dy, ipp[2]]
    d.Rows = d.Columns = N
    d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 12, 11, 0
    d.RescaleSlope, d.RescaleIntercept = 1, -1024
    d.PixelData = stored.tobytes()
    d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for tag in ("SmallestImagePixelValue", "LargestImagePixelValue", "WindowCenter", "WindowWidth"):
        if tag in d:
            del d[tag]
    base.append(d)
hu_volume = np.stack([d.pixel_array.astype(np.int32) - 1024 for d in base])  # [k, j, i]


def ref(dims, spacing, origin, hu, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), **extra):
    r = {"dims": list(dims), "spacing_mm": [float(s) for s in spacing], "origin_mm": [float(o) for o in origin],
         "direction": [float(v) for v in direction], "hu_min": int(hu.min()), "hu_max": int(hu.max()),
         "hu_mean": float(hu.astype(np.float64).mean())}
    r.update(extra)
    return r


dx = float(base[0].PixelSpacing[1]); dy = float(base[0].PixelSpacing[0])
z = [float(d.ImagePositionPatient[2]) for d in base]
origin = [float(v) for v in base[0].ImagePositionPatient]
reference = {}


def write_series(folder, datasets, shuffle=True):
    os.makedirs(folder, exist_ok=True)
    order = list(range(len(datasets)))
    if shuffle:  # file names must not give the order away
        order = order[::-1][1:] + order[-1:] if len(order) > 2 else order
    for n, i in enumerate(order):
        datasets[i].save_as(os.path.join(folder, f"IM{n:04d}.dcm"), enforce_file_format=True)


series_ref = ref((N, N, 5), (dx, dy, z[1] - z[0]), origin, hu_volume,
                 series_uid=str(base[0].SeriesInstanceUID))
write_series(os.path.join(FIX, "dicom", "explicit_le"), base)
reference["dicom/explicit_le"] = series_ref

# Other transfer syntaxes, written by dcmtk and GDCM from the explicit-LE files.
coders = {
    "implicit_le": ["dcmconv", "+ti"],
    "explicit_be": ["dcmconv", "+tb"],
    "deflated": ["dcmconv", "+td"],
    "rle": ["dcmcrle"],
    "jpeg_lossless": ["dcmcjpeg", "+e1"],  # process 14, selection value 1 (1.2.840.10008.1.2.4.70)
    "jpeg_lossless_p14": ["dcmcjpeg", "+el"],  # process 14 with predictor (1.2.840.10008.1.2.4.57)
    "jpeg_extended": ["dcmcjpeg", "+ee"],  # 12-bit lossy (1.2.840.10008.1.2.4.51)
    "jpeg2000_lossless": ["gdcmconv", "--j2k"],
    # Rewritten afterwards by scripts/make_j2k_lossy.py: gdcmconv's lossy output decodes to a constant.
    "jpeg2000_lossy": ["gdcmconv", "--j2k", "--lossy", "-q", "40"],
    "jpegls_lossless": ["dcmcjpls"],
}
lossy = {"jpeg_extended": 12.0, "jpeg2000_lossy": 40.0}
src_dir = os.path.join(FIX, "dicom", "explicit_le")
for name, cmd in coders.items():
    out_dir = os.path.join(FIX, "dicom", name)
    os.makedirs(out_dir)
    for f in sorted(os.listdir(src_dir)):
        subprocess.run(cmd + [os.path.join(src_dir, f), os.path.join(out_dir, f)], check=True)
    ts = str(pydicom.dcmread(os.path.join(out_dir, "IM0000.dcm"), stop_before_pixels=True).file_meta.TransferSyntaxUID)
    r = dict(series_ref, transfer_syntax=ts)
    if name in lossy:
        r["mean_tolerance"] = lossy[name]
    if name == "jpeg_extended":  # 12-bit lossy: jpeg-decoder has no 12-bit support (see README)
        r = {"error": "could not be decoded", "transfer_syntax": ts}
    if name.startswith("jpegls"):
        r = {"error": "JPEG-LS", "transfer_syntax": ts}
    reference[f"dicom/{name}"] = r

# JPEG baseline is 8-bit only: an 8-bit windowed copy of the series.
eight = []
for d in base:
    e = copy.deepcopy(d)
    v = np.clip((e.pixel_array.astype(np.int32) - 1024 + 1000) // 8, 0, 255).astype(np.uint8)
    e.BitsAllocated, e.BitsStored, e.HighBit = 8, 8, 7
    e.RescaleSlope, e.RescaleIntercept = 1, 0
    e.PixelData = v.tobytes()
    eight.append((e, v))
d8 = os.path.join(tmp, "eight"); os.makedirs(d8)
for n, (e, _) in enumerate(eight):
    e.save_as(os.path.join(d8, f"IM{n:04d}.dcm"), enforce_file_format=True)
out_dir = os.path.join(FIX, "dicom", "jpeg_baseline"); os.makedirs(out_dir)
for f in sorted(os.listdir(d8)):
    subprocess.run(["dcmcjpeg", "+eb", os.path.join(d8, f), os.path.join(out_dir, f)], check=True)
v8 = np.stack([v for _, v in eight])
reference["dicom/jpeg_baseline"] = ref((N, N, 5), (dx, dy, z[1] - z[0]), origin, v8, mean_tolerance=3.0,
                                       transfer_syntax="1.2.840.10008.1.2.4.50", range_tolerance=12)

# Without the 128-byte preamble (meta group kept), and a bare data set (no meta group).
os.makedirs(os.path.join(FIX, "dicom", "no_preamble"))
for f in sorted(os.listdir(src_dir)):
    data = open(os.path.join(src_dir, f), "rb").read()
    open(os.path.join(FIX, "dicom", "no_preamble", f), "wb").write(data[128:])
reference["dicom/no_preamble"] = series_ref
os.makedirs(os.path.join(FIX, "dicom", "bare_dataset"))
for n, d in enumerate(base):
    bare = copy.deepcopy(d)
    del bare.file_meta
    bare.preamble = None
    # implicit VR little endian, no preamble, no meta group
    bare.save_as(os.path.join(FIX, "dicom", "bare_dataset", f"slice{n}"), implicit_vr=True, little_endian=True,
                 enforce_file_format=False)
reference["dicom/bare_dataset"] = series_ref

# A single 2-D image: dims are [columns, rows, frames].
single = os.path.join(FIX, "dicom", "single.dcm")
base[2].save_as(single, enforce_file_format=True)
reference["dicom/single.dcm"] = ref((N, N, 1), (dx, dy, float(base[2].SliceThickness)), base[2].ImagePositionPatient,
                                    hu_volume[2:3])

# Enhanced (multi-frame) CT: the five slices as frames, stored in scrambled order.
mf = copy.deepcopy(base[0])
for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "RescaleSlope",
            "RescaleIntercept", "SliceLocation", "InstanceNumber"):
    if tag in mf:
        del mf[tag]
mf.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
mf.file_meta.MediaStorageSOPClassUID = mf.SOPClassUID
mf.NumberOfFrames = 5
scramble = [3, 0, 4, 1, 2]
shared = pydicom.Dataset()
po = pydicom.Dataset(); po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
pm = pydicom.Dataset(); pm.PixelSpacing = base[0].PixelSpacing; pm.SliceThickness = base[0].SliceThickness
pvt = pydicom.Dataset(); pvt.RescaleSlope = 1; pvt.RescaleIntercept = -1024; pvt.RescaleType = "HU"
shared.PlaneOrientationSequence = [po]; shared.PixelMeasuresSequence = [pm]
shared.PixelValueTransformationSequence = [pvt]
mf.SharedFunctionalGroupsSequence = [shared]
frames = []
for i in scramble:
    item = pydicom.Dataset()
    pp = pydicom.Dataset(); pp.ImagePositionPatient = base[i].ImagePositionPatient
    item.PlanePositionSequence = [pp]
    frames.append(item)
mf.PerFrameFunctionalGroupsSequence = frames
mf.PixelData = b"".join(base[i].PixelData for i in scramble)
mf.save_as(os.path.join(FIX, "dicom", "multiframe.dcm"), enforce_file_format=True)
reference["dicom/multiframe.dcm"] = series_ref

# Zipped folder.
with zipfile.ZipFile(os.path.join(FIX, "dicom", "series.zip"), "w", zipfile.ZIP_DEFLATED) as z_:
    for f in sorted(os.listdir(src_dir)):
        z_.write(os.path.join(src_dir, f), f"CT/{f}")
reference["dicom/series.zip"] = series_ref


def variant(name, mutate, warning):
    ds = [copy.deepcopy(d) for d in base]
    ds = mutate(ds)
    write_series(os.path.join(FIX, "dicom", name), ds)
    reference[f"dicom/{name}"] = {"warning": warning, "slices": None}
    return ds


def dup(ds):
    extra = copy.deepcopy(ds[2]); extra.SOPInstanceUID = generate_uid(); extra.InstanceNumber = 99
    return ds + [extra]


def missing(ds):
    return ds[:2] + ds[3:]


def uneven(ds):
    p = [float(v) for v in ds[3].ImagePositionPatient]; ds[3].ImagePositionPatient = [p[0], p[1], p[2] + 0.8]
    return ds


def tilt(ds):
    for n, d in enumerate(ds):
        p = [float(v) for v in d.ImagePositionPatient]; d.ImagePositionPatient = [p[0], p[1] + n * 0.5, p[2]]
    return ds


def mixed(ds):
    other = copy.deepcopy(ds[0]); other.SeriesInstanceUID = generate_uid(); other.SOPInstanceUID = generate_uid()
    other.SeriesDescription = "scout"
    return ds + [other]


variant("duplicate_position", dup, "duplicate positions")
reference["dicom/duplicate_position"]["slices"] = 5
variant("missing_slice", missing, "missing slices")
reference["dicom/missing_slice"]["slices"] = 4
variant("uneven_spacing", uneven, "uneven slice spacing")
reference["dicom/uneven_spacing"]["slices"] = 5
variant("gantry_tilt", tilt, "gantry tilt")
reference["dicom/gantry_tilt"]["slices"] = 5
variant("mixed_series", mixed, "other series")
reference["dicom/mixed_series"]["slices"] = 5

# MetaImage and NIfTI written from the same HU volume (LUNA16-style MET_SHORT).
hu16 = hu_volume.astype(np.int16)
os.makedirs(os.path.join(FIX, "metaimage"))
head = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n{comp}"
        "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = {o[0]} {o[1]} {o[2]}\nCenterOfRotation = 0 0 0\n"
        "AnatomicalOrientation = RAI\nElementSpacing = {dx} {dy} {dz}\nDimSize = {n} {n} 5\n"
        "ElementType = MET_SHORT\nElementDataFile = {file}\n")
fmt = dict(o=origin, dx=dx, dy=dy, dz=z[1] - z[0], n=N)
open(os.path.join(FIX, "metaimage", "scan.mhd"), "w").write(head.format(comp="", file="scan.raw", **fmt))
open(os.path.join(FIX, "metaimage", "scan.raw"), "wb").write(hu16.tobytes())
packed = zlib.compress(hu16.tobytes())
open(os.path.join(FIX, "metaimage", "packed.mhd"), "w").write(
    head.format(comp=f"CompressedData = True\nCompressedDataSize = {len(packed)}\n", file="packed.zraw", **fmt))
open(os.path.join(FIX, "metaimage", "packed.zraw"), "wb").write(packed)
open(os.path.join(FIX, "metaimage", "single.mha"), "wb").write(
    head.format(comp="", file="LOCAL", **fmt).encode() + hu16.tobytes())
for n_ in ("metaimage/scan.mhd", "metaimage/packed.mhd", "metaimage/single.mha"):
    reference[n_] = dict(series_ref); reference[n_].pop("series_uid")

os.makedirs(os.path.join(FIX, "nifti"))
lps = np.eye(4); lps[0, 0], lps[1, 1], lps[2, 2] = dx, dy, z[1] - z[0]; lps[:3, 3] = origin
ras = np.diag([-1, -1, 1, 1]) @ lps
img = nib.Nifti1Image(np.transpose(hu16, (2, 1, 0)), ras); img.set_sform(ras, 1); img.set_qform(ras, 1)
nib.save(img, os.path.join(FIX, "nifti", "scan.nii.gz"))
# qform-only and rotated (a flipped row axis) variants check the orientation maths.
img_q = nib.Nifti1Image(np.transpose(hu16, (2, 1, 0)), ras); img_q.set_sform(None, 0); img_q.set_qform(ras, 1)
nib.save(img_q, os.path.join(FIX, "nifti", "qform_only.nii"))
flip = ras.copy(); flip[:3, 1] *= -1  # rows run anterior instead of posterior
img_f = nib.Nifti1Image(np.transpose(hu16, (2, 1, 0)), flip); img_f.set_sform(flip, 1); img_f.set_qform(flip, 1)
nib.save(img_f, os.path.join(FIX, "nifti", "flipped_rows.nii.gz"))
scaled = nib.Nifti1Image(np.transpose((hu16.astype(np.int32) + 1024).astype(np.uint16), (2, 1, 0)), ras)
scaled.header.set_slope_inter(1.0, -1024.0); scaled.set_sform(ras, 1)
nib.save(scaled, os.path.join(FIX, "nifti", "scaled_uint16.nii"))
for n_ in ("nifti/scan.nii.gz", "nifti/qform_only.nii", "nifti/scaled_uint16.nii"):
    reference[n_] = dict(series_ref); reference[n_].pop("series_uid")
reference["nifti/flipped_rows.nii.gz"] = dict(reference["nifti/scan.nii.gz"], direction=[1, 0, 0, 0, -1, 0, 0, 0, 1])

# PNG stacks: 16-bit grey (values HU+1024) and 8-bit grey, names that sort naturally.
for bits in (8, 16):
    d = os.path.join(FIX, "png", f"grey{bits}"); os.makedirs(d)
    vals = (hu16.astype(np.int32) + 1024) if bits == 16 else np.clip((hu16.astype(np.int32) + 1000) // 8, 0, 255)
    for k in range(5):
        arr = vals[k].astype(np.uint16 if bits == 16 else np.uint8)
        Image.fromarray(arr).save(os.path.join(d, f"slice{[1, 2, 3, 10, 11][k]}.png"))
    reference[f"png/grey{bits}"] = ref((N, N, 5), (1, 1, 1), (0, 0, 0), vals)
jd = os.path.join(FIX, "png", "jpeg8"); os.makedirs(jd)
for k in range(5):
    Image.fromarray(np.clip((hu16[k].astype(np.int32) + 1000) // 8, 0, 255).astype(np.uint8)).save(
        os.path.join(jd, f"{k}.jpg"), quality=95)
reference["png/jpeg8"] = dict(reference["png/grey8"], mean_tolerance=2.0, range_tolerance=40)

json.dump(reference, open(os.path.join(FIX, "reference.json"), "w"), indent=1, sort_keys=True)

# ---------------------------------------------------------------- malformed corpus
expected = {}
good = open(os.path.join(src_dir, "IM0000.dcm"), "rb").read()


def bad(name, data, error=None, warning=None):
    path = os.path.join(BAD, name)
    if isinstance(data, dict):
        os.makedirs(path)
        for n_, b in data.items():
            open(os.path.join(path, n_), "wb").write(b)
    else:
        open(path, "wb").write(data)
    expected[name] = {"error": error} if error else {"warning": warning}


bad("zero_length.dcm", b"", error="not a DICOM file")
bad("text_named_dcm.dcm", b"This is a discharge letter, not an image.\n" * 20, error="not a DICOM file")
bad("truncated_header.dcm", good[:300], error="truncated")
bad("truncated_pixels.dcm", good[:len(good) - 5000], error="truncated")
sr = copy.deepcopy(base[0])
for tag in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
            "SamplesPerPixel", "PhotometricInterpretation"):
    del sr[tag]
sr.Modality = "SR"; sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
buf = io.BytesIO(); sr.save_as(buf, enforce_file_format=True)
bad("no_pixel_data.dcm", buf.getvalue(), error="without pixel data")
huge = copy.deepcopy(base[0]); huge.Rows = huge.Columns = 60000; huge.NumberOfFrames = 500
buf = io.BytesIO(); huge.save_as(buf, enforce_file_format=True)
bad("huge_dims.dcm", buf.getvalue(), error="more than the limit")
bad("jpegls.dcm", open(os.path.join(FIX, "dicom", "jpegls_lossless", "IM0000.dcm"), "rb").read(), error="JPEG-LS")
# The meta group claims another syntax than the data set is written in (same UID length,
# so only the claim changes).
assert good.count(b"1.2.840.10008.1.2.1\0") == 1
bad("wrong_transfer_syntax.dcm", good.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.2\0"),
    error="mislabelled")
bad("unknown_transfer_syntax.dcm", good.replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.10"),
    error="not a readable DICOM file")
rgb = copy.deepcopy(base[0]); rgb.SamplesPerPixel = 3; rgb.PhotometricInterpretation = "RGB"; rgb.PlanarConfiguration = 0
rgb.BitsAllocated = rgb.BitsStored = 8; rgb.HighBit = 7; rgb.PixelData = bytes(N * N * 3)
buf = io.BytesIO(); rgb.save_as(buf, enforce_file_format=True)
bad("colour_photo.dcm", buf.getvalue(), error="samples per pixel")
bad("mixed_series", {f"IM{i}.dcm": open(os.path.join(FIX, "dicom", "mixed_series", f), "rb").read()
                     for i, f in enumerate(sorted(os.listdir(os.path.join(FIX, "dicom", "mixed_series"))))},
    warning="other series")
raw = hu16.tobytes()
mhd = head.format(comp="", file="short.raw", **fmt).encode()
bad("mhd_short_raw", {"scan.mhd": mhd, "short.raw": raw[:len(raw) // 2]}, error="holds")
bad("mhd_missing_raw", {"scan.mhd": head.format(comp="", file="absent.raw", **fmt).encode()}, error="absent.raw")
bad("mhd_huge_dims.mhd", head.format(comp="", file="LOCAL", **fmt).replace(f"DimSize = {N} {N} 5", "DimSize = 100000 100000 100000").encode(),
    error="more than the limit")
bad("mhd_bad_type.mhd", head.format(comp="", file="LOCAL", **fmt).replace("MET_SHORT", "MET_COMPLEX").encode() + raw,
    error="ElementType")
bad("mhd_no_datafile.mhd", b"ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\n", error="no ElementDataFile")
bad("mhd_zraw_corrupt", {"scan.mhd": head.format(comp="CompressedData = True\n", file="scan.zraw", **fmt).encode(),
                         "scan.zraw": packed[:200] + bytes(200)}, error="zlib")
bad("mha_truncated.mha", head.format(comp="", file="LOCAL", **fmt).encode() + raw[:1000], error="holds")
nii = open(os.path.join(FIX, "nifti", "qform_only.nii"), "rb").read()
bad("nifti_truncated.nii", nii[:len(nii) // 2], error="truncated")
bad("nifti_bad_magic.nii", nii[:344] + b"xyz\0" + nii[348:], error="magic")
bad("nifti_header_only.nii", nii[:100], error="too short")
nifti2 = struct.pack("<i", 540) + bytes(536)
bad("nifti2.nii", nifti2, error="NIfTI-2")
bomb_header = bytearray(nii[:352])
struct.pack_into("<8h", bomb_header, 40, 3, 2048, 2048, 2048, 1, 1, 1, 1)
bad("nifti_bomb.nii.gz", gzip.compress(bytes(bomb_header) + bytes(50 << 20)), error="more than the limit")
bad("nifti_not_gzip.nii.gz", nii, warning="not compressed")
# A PNG whose header claims 100000 x 100000 pixels (a decompression bomb).
png = io.BytesIO(); Image.new("L", (8, 8)).save(png, "PNG"); png = bytearray(png.getvalue())
struct.pack_into(">II", png, 16, 100000, 100000)
struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF)
bad("png_bomb.png", bytes(png), error="unreadable image")
p1 = io.BytesIO(); Image.new("L", (8, 8)).save(p1, "PNG")
p2 = io.BytesIO(); Image.new("L", (9, 8)).save(p2, "PNG")
bad("png_mismatched", {"a1.png": p1.getvalue(), "a2.png": p2.getvalue()}, error="but the first slice is")
bad("png_truncated.png", p1.getvalue()[:40], error="unreadable image")
zipped = open(os.path.join(FIX, "dicom", "series.zip"), "rb").read()
bad("zip_truncated.zip", zipped[:len(zipped) // 2], error="not a readable zip")
zb = io.BytesIO()
with zipfile.ZipFile(zb, "w") as z_:
    z_.writestr("notes/readme.txt", "no images here")
bad("zip_without_images.zip", zb.getvalue(), error="not a DICOM file")
bad("raw_without_header.raw", raw[:1024], error="needs its .mhd header")
json.dump(expected, open(os.path.join(BAD, "expected.json"), "w"), indent=1, sort_keys=True)
shutil.rmtree(tmp)
print(len(reference), "fixtures,", len(expected), "malformed cases")
