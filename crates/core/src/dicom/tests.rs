use super::*;

/// A stored sample's value: `bits_stored` bits kept, sign-extended when signed.
fn sample(raw: u32, layout: &PixelLayout) -> i32 {
    SampleBits::new(layout).value(raw)
}

fn layout(bits_stored: u16, signed: bool) -> PixelLayout {
    PixelLayout {
        rows: 1,
        columns: 1,
        bits_allocated: 16,
        bits_stored,
        signed,
    }
}

#[test]
fn samples_are_masked_and_sign_extended() {
    assert_eq!(sample(0x0FFF, &layout(12, true)), -1);
    assert_eq!(sample(0xF7FF, &layout(12, true)), 2047);
    assert_eq!(sample(0xFFFF, &layout(12, false)), 4095);
    assert_eq!(sample(0x8000, &layout(16, true)), -32768);
}

/// An element in implicit VR little endian (`None`: undefined length).
fn implicit(group: u16, element: u16, length: Option<u32>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend(length.unwrap_or(u32::MAX).to_le_bytes());
    out.extend(value);
    out
}

#[test]
fn native_pixel_data_is_the_top_level_one_not_an_icons() {
    // (0088,0200) Icon Image Sequence, undefined length, one undefined-length item
    // holding a 4-byte Pixel Data; then a defined-length sequence; then the slice's.
    let mut icon_item = implicit(0x0028, 0x0010, Some(2), &[2, 0]);
    icon_item.extend(implicit(0x7FE0, 0x0010, Some(4), &[9, 9, 9, 9]));
    icon_item.extend(implicit(0xFFFE, 0xE00D, Some(0), &[]));
    let mut data = implicit(0x0008, 0x0060, Some(2), b"CT");
    data.extend(implicit(0x0088, 0x0200, None, &[]));
    data.extend(implicit(0xFFFE, 0xE000, None, &icon_item));
    data.extend(implicit(0xFFFE, 0xE0DD, Some(0), &[]));
    let defined_item = implicit(0x7FE0, 0x0010, Some(2), &[7, 7]);
    let defined_sequence = implicit(
        0xFFFE,
        0xE000,
        Some(defined_item.len() as u32),
        &defined_item,
    );
    data.extend(implicit(
        0x0008,
        0x1140,
        Some(defined_sequence.len() as u32),
        &defined_sequence,
    ));
    let pixels_at = data.len() + 8;
    data.extend(implicit(0x7FE0, 0x0010, Some(6), &[1, 2, 3, 4, 5, 6]));
    assert_eq!(
        native_pixel_data(&data, 0, false, false),
        Some(pixels_at..pixels_at + 6)
    );
    // Cut short, or with the slice's pixel data of undefined length: left to dicom-rs.
    assert_eq!(
        native_pixel_data(&data[..data.len() - 1], 0, false, false),
        None
    );
    let mut encapsulated = data[..pixels_at - 8].to_vec();
    encapsulated.extend(implicit(0x7FE0, 0x0010, None, &[]));
    assert_eq!(native_pixel_data(&encapsulated, 0, false, false), None);
    // An icon item that never ends.
    assert_eq!(native_pixel_data(&data[..40], 0, false, false), None);
}

#[test]
fn uncompressed_fixtures_are_decoded_in_place() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom");
    for folder in [
        "explicit_le",
        "explicit_be",
        "implicit_le",
        "bare_dataset",
        "no_preamble",
    ] {
        let file = std::fs::read_dir(root.join(folder))
            .expect("fixture folder")
            .map(|e| e.expect("entry").path())
            .min()
            .expect("a file");
        let bytes = std::fs::read(&file).expect("fixture");
        let parsed = parse(&bytes, "fixture", false)
            .expect("parses")
            .expect("DICOM");
        let pixels = parsed.native_pixels.expect("pixels found in place");
        let columns = int(parsed.dataset(), tags::COLUMNS).expect("columns") as usize;
        let rows = int(parsed.dataset(), tags::ROWS).expect("rows") as usize;
        assert!(pixels.len() >= columns * rows * 2, "{folder}");
        assert!(parsed.dataset().get(tags::PIXEL_DATA).is_none(), "{folder}");
    }
    let compressed = std::fs::read_dir(root.join("rle"))
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .min()
        .expect("a file");
    let bytes = std::fs::read(compressed).expect("fixture");
    let parsed = parse(&bytes, "fixture", false)
        .expect("parses")
        .expect("DICOM");
    assert!(parsed.native_pixels.is_none());
}

#[test]
fn integer_and_float_rescales_agree_on_every_sample() {
    let words: Vec<u16> = (0..=u16::MAX).collect();
    let bytes_le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let bytes_be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let mut clamped_somewhere = false;
    for (bits_stored, signed) in [(16, false), (16, true), (12, false), (12, true), (1, true)] {
        let layout = layout(bits_stored, signed);
        for intercept in [-1024.0, 0.0, -40000.0, 40000.0] {
            let integer = Rescale::new(1.0, intercept);
            assert!(integer.integer_offset.is_some());
            let float = Rescale {
                integer_offset: None,
                ..integer
            };
            let run = |rescale, how: &dyn Fn(Rescale, &mut [i16], &mut u64)| {
                let mut out = vec![0i16; words.len()];
                let mut clamped = 0;
                how(rescale, &mut out, &mut clamped);
                (out, clamped)
            };
            let expected = run(float, &|r, out, c| store_words(&words, &layout, r, out, c));
            clamped_somewhere |= expected.1 > 0;
            assert_eq!(
                run(integer, &|r, out, c| store_words(
                    &words, &layout, r, out, c
                )),
                expected
            );
            assert_eq!(
                run(integer, &|r, out, c| store(
                    &bytes_le, false, &layout, r, out, c
                )),
                expected
            );
            assert_eq!(
                run(integer, &|r, out, c| store(
                    &bytes_be, true, &layout, r, out, c
                )),
                expected
            );
            // Sample by sample, as the slow path of sample() defines it.
            for (&w, &v) in words.iter().zip(&expected.0).step_by(97) {
                let want =
                    (f64::from(sample(u32::from(w), &layout)) + intercept).clamp(-32768.0, 32767.0);
                assert_eq!(f64::from(v), want);
            }
        }
    }
    assert!(clamped_somewhere);
    let mut clamped = 0;
    let mut out = [0i16; 1];
    store_words(
        &[0xFFFD],
        &layout(16, true),
        Rescale::new(0.5, 0.0),
        &mut out,
        &mut clamped,
    );
    assert_eq!(out, [-2]); // -3 × 0.5 rounds half away from zero
    assert_eq!(clamped, 0);
}

#[test]
fn frames_are_cut_from_fragments_by_count_or_offset_table() {
    let fragments = [vec![1u8, 2], vec![3, 4, 5, 6], vec![7, 8]];
    // One frame: everything.
    assert_eq!(
        frame_bytes_of(&fragments, &[], 0, 1).unwrap().as_ref(),
        &[1, 2, 3, 4, 5, 6, 7, 8]
    );
    // As many fragments as frames: one each.
    assert_eq!(
        frame_bytes_of(&fragments, &[], 1, 3).unwrap().as_ref(),
        &[3, 4, 5, 6]
    );
    // Two frames over three fragments: the offset table (item header 8 + bytes) decides.
    assert_eq!(
        frame_bytes_of(&fragments, &[0, 10], 1, 2).unwrap().as_ref(),
        &[3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        frame_bytes_of(&fragments, &[0, 10], 0, 2).unwrap().as_ref(),
        &[1, 2]
    );
    assert!(frame_bytes_of(&fragments, &[], 0, 2).is_err());
    assert!(frame_bytes_of(&fragments, &[0, 500], 1, 2).is_err());
    assert!(frame_bytes_of::<Vec<u8>>(&[], &[], 0, 1).is_err());
}

#[test]
fn jpeg2000_size_and_sign_come_from_the_siz_marker() {
    let mut siz = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
    for v in [96u32, 64, 0, 0, 96, 64, 0, 0] {
        siz.extend_from_slice(&v.to_be_bytes());
    }
    siz.extend_from_slice(&[0, 1, 0x8F, 1, 1]); // one component, signed, 16 bits
    assert!(check_codestream_size(&siz, 96, 64).is_ok());
    assert!(check_codestream_size(&siz, 64, 96).is_err());
    assert!(check_codestream_size(&siz[..12], 96, 64).is_err());
    assert!(codestream_component_signed(&siz));
    siz[42] = 0x0F;
    assert!(!codestream_component_signed(&siz));
    assert!(
        decode_jpeg2000(&siz, 96, 64).is_err(),
        "no tiles: an error, not a panic"
    );
}

#[test]
fn rle_decodes_runs_and_refuses_truncation() {
    // 2 pixels of 16 bits: MSB plane [0x01, 0x01] as a repeat run, LSB plane [0x02, 0x03] literal.
    let mut fragment = vec![0u8; 64];
    fragment[0] = 2;
    fragment[4] = 64;
    fragment[8] = 66;
    fragment.extend_from_slice(&[0xFF, 0x01]); // repeat 0x01 twice
    fragment.extend_from_slice(&[0x01, 0x02, 0x03]); // literal of two bytes
    assert_eq!(
        decode_rle(&fragment, 2, 2).unwrap(),
        vec![0x02, 0x01, 0x03, 0x01]
    );
    assert!(
        decode_rle(&fragment[..68], 2, 2)
            .unwrap_err()
            .contains("truncated")
    );
    assert!(decode_rle(&fragment[..10], 2, 2).is_err());
    assert!(
        decode_rle(&fragment, 2, 1)
            .unwrap_err()
            .contains("segments")
    );
}

#[test]
fn arrivals_are_put_in_place_and_the_rest_dropped() {
    // Slices of 3 voxels whose first value names them, and a 2-voxel stranger (7).
    let lengths = [3, 3, 2, 3, 3, 3];
    let names = [10, 11, 7, 12, 13, 14];
    let mut voxels: Vec<i16> = lengths
        .iter()
        .zip(names)
        .flat_map(|(&len, name)| (0..len as i16).map(move |i| name * 10 + i))
        .collect();
    // Slot k takes arrival order[k]; arrivals 2 (the stranger) and 4 are dropped.
    let order = [5, 0, 3, 1];
    arrange_slices(&mut voxels, &lengths, &order, 3).expect("valid");
    let firsts: Vec<i16> = voxels.chunks(3).map(|c| c[0] / 10).collect();
    assert_eq!(firsts, vec![14, 10, 12, 11]);
    assert_eq!(voxels[1], 141, "whole slices move");

    for bad in [&[0, 0][..], &[2], &[9]] {
        let mut voxels = vec![0i16; 17];
        assert!(
            arrange_slices(&mut voxels, &lengths, bad, 3).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn every_permutation_of_four_slices_is_arranged() {
    let mut order = [0usize, 1, 2, 3];
    let mut count = 0;
    // Heap's algorithm, iteratively.
    let mut c = [0usize; 4];
    let mut check = |order: &[usize; 4]| {
        let mut voxels: Vec<i16> = (0..8).collect();
        arrange_slices(&mut voxels, &[2, 2, 2, 2], order, 2).expect("valid");
        let want: Vec<i16> = order
            .iter()
            .flat_map(|&a| [2 * a as i16, 2 * a as i16 + 1])
            .collect();
        assert_eq!(voxels, want, "{order:?}");
        count += 1;
    };
    check(&order);
    let mut i = 0;
    while i < 4 {
        if c[i] < i {
            if i % 2 == 0 {
                order.swap(0, i);
            } else {
                order.swap(c[i], i);
            }
            check(&order);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    assert_eq!(count, 24);
}

#[test]
fn sniffing() {
    let mut preamble = vec![0u8; 140];
    preamble[128..132].copy_from_slice(b"DICM");
    assert!(matches!(sniff(&preamble), Sniff::Preamble));
    assert!(matches!(sniff(b"DICM\x02\x00\x00\x00"), Sniff::MetaOnly));
    assert!(matches!(sniff(b"\x89PNG\r\n\x1a\n"), Sniff::NotDicom));
    assert!(matches!(sniff(b""), Sniff::NotDicom));
}
