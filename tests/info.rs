//! `fpgan info`: totals agree with the reference's counts and MAC estimates.
use fpgan::nets::generator::{GenCfg, GeneratorConfig};
use fpgan::nets::info::summarize;
use std::process::Command;

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
