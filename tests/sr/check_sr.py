#!/usr/bin/env python3
"""Reads back a DICOM SR written by `nodulens detect --sr` and checks it against the JSON report
of the same run and one source image: pydicom parses it; it sits in the source's study (patient
and study modules copied, a new series) and refers to the source series and Frame of Reference;
highdicom sees a TID 1500 Measurement Report with one planar ROI group per finding, each at the
finding's centre with its diameter; dciodvfy (dicom3tools) reports no error.

Usage: check_sr.py SR.dcm REPORT.json SOURCE_SLICE.dcm   (exit 0 when all hold)
"""
import json
import subprocess
import sys

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes


def main(sr_path, json_path, source_path):
    sr = pydicom.dcmread(sr_path)
    report = json.load(open(json_path))
    source = pydicom.dcmread(source_path, stop_before_pixels=True)
    problems = []

    def same(name, a, b):
        if a != b:
            problems.append(f"{name}: {a!r} != {b!r}")

    same("SOP Class", sr.SOPClassUID, "1.2.840.10008.5.1.4.1.1.88.34")
    same("Modality", sr.Modality, "SR")
    for keyword in ["PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyID", "AccessionNumber"]:
        same(keyword, str(sr.get(keyword, "")), str(source.get(keyword, "")))
    if sr.SeriesInstanceUID == source.SeriesInstanceUID:
        problems.append("the SR must be a new series")
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    same("evidence study", evidence.StudyInstanceUID, source.StudyInstanceUID)
    referenced = evidence.ReferencedSeriesSequence[0]
    same("evidence series", referenced.SeriesInstanceUID, source.SeriesInstanceUID)
    sops = {item.ReferencedSOPInstanceUID for item in referenced.ReferencedSOPSequence}
    if source.SOPInstanceUID not in sops:
        problems.append("the source image is not among the referenced instances")

    document = hd.sr.srread(sr_path)
    content = document.content
    if not isinstance(content, hd.sr.MeasurementReport):
        problems.append(f"highdicom read {type(content).__name__}, not a MeasurementReport")
    else:
        groups = content.get_planar_roi_measurement_groups()
        findings = report["findings"]
        same("measurement groups", len(groups), len(findings))
        for group, finding in zip(groups, findings):
            region = group.roi
            if region is None:
                problems.append("a group without its region")
                continue
            same("graphic type", region.graphic_type.value, "POINT")
            same("frame of reference", region.frame_of_reference_uid,
                 source.FrameOfReferenceUID)
            point = region.value[0]
            if max(abs(float(a) - b) for a, b in zip(point, finding["center_mm"])) > 0.01:
                problems.append(f"point {list(point)} != centre {finding['center_mm']}")
            diameter = group.get_measurements(name=codes.SCT.Diameter)
            if len(diameter) != 1 or abs(diameter[0].value - finding["diameter_mm"]) > 1e-6:
                problems.append(f"diameter of {finding['center_mm']} not {finding['diameter_mm']}")
            volume = group.get_measurements(name=codes.SCT.Volume)
            if len(volume) != 1 or abs(volume[0].value - finding["volume_mm3"]) > 1e-3 * max(1, finding["volume_mm3"]):
                problems.append(f"volume of {finding['center_mm']} not {finding['volume_mm3']}")
        observers = content.get_observer_contexts(observer_type=codes.DCM.Device)
        same("device observers", len(observers), 1)

    result = subprocess.run(["dciodvfy", sr_path], capture_output=True, text=True)
    errors = [line for line in (result.stdout + result.stderr).splitlines()
              if line.startswith("Error")]
    problems.extend(f"dciodvfy: {line}" for line in errors)

    for problem in problems:
        print(problem)
    n = len(report["findings"])
    print(f"{'FAIL' if problems else 'OK'}: {n} findings, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
