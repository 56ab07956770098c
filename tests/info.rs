//! `fpgan info`: totals agree with the reference's counts and MAC estimates.
mod common;

use fpgan::nets::generator::{GenCfg, GeneratorConfig};
use fpgan::nets::info::summarize;
use std::collections::HashMap;
use std::process::Command;
use tch::Tensor;

/// Conditional networks have the official modules' parameter counts: the sums over the
/// parameter shapes the official code recorded in the parity fixture (5 classes, ngf 16, 128).
#[test]
fn conditional_counts_match_the_official_modules() {
    let fx: HashMap<String, Tensor> = common::fixture("official.safetensors");
    let count = |prefix: &str| -> i64 {
        fx.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| Vec::<i64>::try_from(v).unwrap().iter().product::<i64>())
            .sum()
    };
    for cfg in GenCfg::ALL {
        let config = GeneratorConfig {
            ngf: 16,
            classes: 5,
            ..GeneratorConfig::new(cfg, 128)
        };
        let s = summarize(&config).unwrap();
        let want = count(&format!("gc.{cfg}.128.param."));
        assert!(want > 0);
        assert_eq!(s[0].params, want, "{cfg}");
        assert!(s[0].rows.iter().any(|r| r.name == "synthesis.embed"));
        assert_eq!(s[2].params, count("dc.param."));
        assert_eq!(s[2].rows.iter().map(|r| r.params).sum::<i64>(), s[2].params);
        assert_eq!(s[2].rows[0].shape, vec![1, 1, 4, 4], "a head's logits");
    }
}

#[test]
fn totals_and_macs_match_the_reference() {
    // reference 1.7 / 2: GMAC per image at 256 (fastgan ~49.7, lite ~31.6, faster ~5.85)
    for (cfg, params, gmac) in [
        (GenCfg::Fastgan, 105_684_175, 49.7),
        (GenCfg::FastganLite, 79_354_307, 31.6),
        (GenCfg::Faster, 36_601_871, 5.85),
    ] {
        let s = summarize(&GeneratorConfig::new(cfg, 256)).unwrap();
        assert_eq!(s[0].params, params, "{cfg}");
        let g = s[0].macs as f64 / 1e9;
        assert!((g - gmac).abs() / gmac < 0.01, "{cfg}: {g} GMAC");
        assert_eq!(s[1].params, 2_958_848 + 200_128 + 176_640);
        assert_eq!(s[2].params, 10_331_328);
        // rows add up to the totals, and the last G row is the image
        assert_eq!(s[0].rows.iter().map(|r| r.params).sum::<i64>(), params);
        assert_eq!(s[0].rows.last().unwrap().shape, vec![1, 3, 256, 256]);
        assert_eq!(s[2].rows[0].shape, vec![1, 1, 5, 5]);
    }
}

#[test]
fn the_command_prints_a_table_and_rejects_bad_options() {
    let bin = env!("CARGO_BIN_EXE_fpgan");
    let o = Command::new(bin)
        .args([
            "info",
            "--cfg",
            "faster_lite",
            "--res",
            "128",
            "--ngf",
            "32",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        out.contains("synthesis.feat_128") && out.contains("discriminator.mini_discs.3"),
        "{out}"
    );
    assert!(
        out.contains("1x1x4x4"),
        "data under 224 gives 4x4 logits per head: {out}"
    );
    let o = Command::new(bin)
        .args(["info", "--cfg", "stylegan"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(bin)
        .args(["info", "--res", "300"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("128, 256, 512 or 1024"));
}
