//! A bounded fuzz of the snapshot reader: a small valid G_ema snapshot, mutated with a seeded
//! generator (bytes flipped in the header and the data, truncations, edited header and metadata
//! JSON), must load or fail with an error; never panic or abort.
mod common;

use fpgan::nets::generator::GenCfg;
use fpgan::snapshot::Network;
use fpgan::util::rng::SplitMix;
use std::path::Path;
use tch::Device;

/// A small valid snapshot (G_ema only).
fn small_snapshot(path: &Path) -> Vec<u8> {
    common::g_ema_snapshot(&common::torch_rng(), path, GenCfg::FasterLite, 0.0)
}

/// The header length written in the first 8 bytes.
fn header_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// One mutation of `good`, chosen by `rng`.
fn mutate(good: &[u8], rng: &mut SplitMix) -> Vec<u8> {
    let mut b = good.to_vec();
    let head = 8 + header_len(good);
    match rng.below(5) {
        0 => {
            // flip a few bytes of the header
            for _ in 0..=rng.below(4) {
                let i = rng.below(head as u32) as usize;
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len() as u32) as usize),
        2 => {
            // a digit of the header (shapes, offsets, config values) replaced by another
            let digits: Vec<usize> = (8..head).filter(|&i| b[i].is_ascii_digit()).collect();
            let i = digits[rng.below(digits.len() as u32) as usize];
            b[i] = b"0123456789-"[rng.below(11) as usize];
        }
        3 => {
            // bytes of the tensor data flipped: must still load (values are not checked)
            let i = head + rng.below((b.len() - head) as u32) as usize;
            b[i] ^= 0xff;
        }
        _ => {
            // a huge or negative number spliced into the JSON
            let text = String::from_utf8_lossy(&b[8..head]).into_owned();
            let digits: Vec<usize> = text
                .match_indices(char::is_numeric)
                .map(|(i, _)| i)
                .collect();
            let at = digits[rng.below(digits.len() as u32) as usize];
            let big = ["99999999999", "-5", "18446744073709551615", "1e308"][rng.below(4) as usize];
            let text = format!("{}{big}{}", &text[..at], &text[at + 1..]);
            b = [
                &(text.len() as u64).to_le_bytes()[..],
                text.as_bytes(),
                &good[head..],
            ]
            .concat();
        }
    }
    b
}

#[test]
fn mutated_snapshots_give_errors_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let good = small_snapshot(&tmp.path().join("good.safetensors"));
    let path = tmp.path().join("network-snapshot-000000.000.safetensors");
    let mut rng = SplitMix(2026);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..common::fuzz_cases() {
        let bad = mutate(&good, &mut rng);
        std::fs::write(&path, &bad).unwrap();
        let result = std::panic::catch_unwind(|| Network::load(&path, Device::Cpu).map(|_| ()));
        match result {
            Ok(Ok(())) => loaded += 1,
            Ok(Err(e)) => {
                refused += 1;
                let msg = format!("{e:#}");
                assert!(
                    msg.contains("network-snapshot-000000.000"),
                    "case {case}: {msg}"
                );
            }
            Err(_) => panic!("case {case}: the reader panicked"),
        }
    }
    assert!(
        refused > 100 && loaded > 10,
        "{refused} refused, {loaded} loaded"
    );
}

#[test]
fn hostile_headers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = small_snapshot(&tmp.path().join("good.safetensors"));
    let head = 8 + header_len(&good);
    let text = String::from_utf8_lossy(&good[8..head]).into_owned();
    let path = tmp.path().join("s.safetensors");
    let cases = [
        // a generator that would need petabytes
        (r#"\"ngf\":8,"#, r#"\"ngf\":8000000,"#),
        // a negative dimension whose product matches the byte count
        ("\"shape\":[", "\"shape\":[-1,-"),
    ];
    for (from, to) in cases {
        assert!(text.contains(from), "{from} not in the header");
        let t = text.replacen(from, to, 1);
        let b = [
            &(t.len() as u64).to_le_bytes()[..],
            t.as_bytes(),
            &good[head..],
        ]
        .concat();
        std::fs::write(&path, b).unwrap();
        let e = Network::load(&path, Device::Cpu).err().expect("refused");
        assert!(format!("{e:#}").contains("s.safetensors"), "{e:#}");
    }
}
