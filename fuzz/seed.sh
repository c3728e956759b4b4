#!/usr/bin/env bash
# Seeds each fuzz target's corpus from the committed fixtures and malformed inputs.
set -euo pipefail
cd "$(dirname "$0")"
fx=../tests/fixtures; bad=../tests/malformed
mkdir -p corpus/{dicom,metaimage,nifti,image_stack,zip}
cp $fx/dicom/single.dcm $fx/dicom/multiframe.dcm corpus/dicom/
for d in $fx/dicom/*/; do cp "$d/IM0000.dcm" "corpus/dicom/$(basename "$d").dcm" 2>/dev/null || true; done
cp $bad/*.dcm corpus/dicom/
cp $fx/metaimage/single.mha $bad/*.mha corpus/metaimage/
cp $fx/nifti/*.nii* $bad/*.nii* corpus/nifti/
cp $fx/png/grey8/slice1.png corpus/image_stack/grey8.png; cp $fx/png/grey16/slice1.png corpus/image_stack/grey16.png
cp $fx/png/jpeg8/0.jpg $bad/*.png corpus/image_stack/
cp $fx/dicom/series.zip $bad/*.zip corpus/zip/
