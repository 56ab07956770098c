//! `progress.png`: G and D loss (smoothed), FID and sec/kimg over kimg for one or several runs,
//! drawn with plotters from each run's stats.jsonl and metric-*.jsonl.
use crate::snapshot::snapshot_kimg;
use crate::util::atomic::atomic_write;
use crate::util::files::{begins_with, files_named, FileKind};
use crate::util::images::png_bytes;
use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One curve: (kimg, value) points in kimg order.
type Curve = Vec<(f64, f64)>;

/// What is drawn of one run.
pub struct RunCurves {
    pub name: String,
    pub g_loss: Curve,
    pub d_loss: Curve,
    pub sec_per_kimg: Curve,
    /// The first FID metric found (fid50k_full, fid10k_full ...), with its name.
    pub fid: Option<(String, Curve)>,
}

fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // a line cut by a kill at the end is skipped, as the reference's readers do
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

impl RunCurves {
    /// Read the curves of the run directory `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let stats_path = dir.join("stats.jsonl");
        if !dir.exists() {
            bail!(
                "{}: no such run directory; give a run directory (runs/NNNNN-...)",
                dir.display()
            );
        }
        if !stats_path.is_file() {
            bail!(
                "{}: no stats.jsonl; give a run directory (runs/NNNNN-...) with at least one tick",
                dir.display()
            );
        }
        let stats = read_jsonl(&stats_path)?;
        let series = |name: &str| -> Curve {
            stats
                .iter()
                .filter_map(|l| {
                    Some((
                        l["Progress/kimg"]["mean"].as_f64()?,
                        l[name]["mean"].as_f64()?,
                    ))
                })
                .filter(|(_, v)| v.is_finite())
                .collect()
        };
        let mut c = RunCurves {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            g_loss: smooth(&series("Loss/G/loss")),
            d_loss: smooth(&series("Loss/D/loss")),
            // tick 0 includes the start-up; leave it out of the speed
            sec_per_kimg: series("Timing/sec_per_kimg").into_iter().skip(1).collect(),
            fid: None,
        };
        for f in files_named(dir, "metric-fid", ".jsonl") {
            let metric =
                f.file_stem().unwrap_or_default().to_string_lossy()["metric-".len()..].to_string();
            // by snapshot, in kimg order; a snapshot scored again shows its latest score
            let by_nimg: std::collections::BTreeMap<i64, f64> = read_jsonl(&f)?
                .iter()
                .filter_map(|l| {
                    let kimg = snapshot_kimg(l["snapshot_pkl"].as_str()?)?;
                    Some(((kimg * 1e3).round() as i64, l["results"][&metric].as_f64()?))
                })
                .collect();
            let curve: Curve = by_nimg
                .into_iter()
                .map(|(n, v)| (n as f64 / 1e3, v))
                .collect();
            if !curve.is_empty() {
                c.fid = Some((metric, curve));
                break;
            }
        }
        Ok(c)
    }
}

/// Exponential moving average as TensorBoard's smoothing (weight 0.6), debiased at the start.
fn smooth(c: &Curve) -> Curve {
    let (w, mut acc, mut n) = (0.6, 0.0, 0);
    c.iter()
        .map(|&(x, y)| {
            acc = acc * w + (1.0 - w) * y;
            n += 1;
            (x, acc / (1.0 - f64::powi(w, n)))
        })
        .collect()
}

const SIZE: (u32, u32) = (1200, 800);

/// What `plot` writes: a PNG of the plot's size (an earlier plot may be replaced, not an image
/// of the run's or a photo).
pub const PLOT_FILE: FileKind = FileKind {
    what: "an fpgan plot (a 1200x800 PNG)",
    is: |p| begins_with(p, b"\x89PNG") && image::image_dimensions(p).is_ok_and(|d| d == SIZE),
};

/// The font plotters draws with (Ubuntu Light, from the epaint_default_fonts crate: no system
/// fonts needed).
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// Draw the curves of `runs` (2x2 panels) and save the PNG at `out` atomically.
pub fn draw(runs: &[RunCurves], out: &Path) -> Result<()> {
    register_font();
    let (w, h) = SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let panels = root.split_evenly((2, 2));
        let metrics: std::collections::BTreeSet<&str> = runs
            .iter()
            .filter_map(|r| Some(r.fid.as_ref()?.0.as_str()))
            .collect();
        let fid_title = match metrics.len() {
            1 => metrics.first().map_or("FID", |m| *m).to_string(),
            _ => "FID".to_string(),
        };
        // each run keeps its colour (its place among the runs) in every panel; FID curves are
        // labelled with their metric where the runs track different ones
        let lines = |f: fn(&RunCurves) -> Option<&Curve>, of_fid: bool| -> Vec<Line> {
            let label = |r: &RunCurves| match (&r.fid, of_fid && metrics.len() > 1) {
                (Some((metric, _)), true) => format!("{} ({metric})", r.name),
                _ => r.name.clone(),
            };
            let named = runs.iter().enumerate();
            named
                .filter_map(|(i, r)| Some((i, label(r), f(r)?)))
                .collect()
        };
        let pick = |f| lines(f, false);
        let legend = runs.len() > 1;
        let fid = lines(|r| r.fid.as_ref().map(|(_, c)| c), true);
        panel(
            &panels[0],
            "G loss (smoothed)",
            &pick(|r| Some(&r.g_loss)),
            legend,
        )?;
        panel(
            &panels[1],
            "D loss (smoothed)",
            &pick(|r| Some(&r.d_loss)),
            legend,
        )?;
        panel(&panels[2], &fid_title, &fid, legend)?;
        panel(
            &panels[3],
            "sec/kimg",
            &pick(|r| Some(&r.sec_per_kimg)),
            legend,
        )?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).context("plot buffer")?;
    let png = png_bytes(&img)?;
    atomic_write(out, |f| Ok(f.write_all(&png)?))
        .with_context(|| format!("cannot write {}", out.display()))
}

/// The x (kimg) and y ranges of a panel: every point with a margin, and a single kimg or a flat
/// curve given a range around its value (not one of 1e-6); None without points.
fn axes(curves: &[Line]) -> Option<(Range<f64>, Range<f64>)> {
    let pts = curves.iter().flat_map(|(_, _, c)| c.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return None;
    }
    let xpad = if x1 > x0 {
        0.0
    } else {
        (x0.abs() * 0.05).max(1e-3)
    };
    let ypad = ((y1 - y0) * 0.05)
        .max(y0.abs().max(y1.abs()) * 0.01)
        .max(1e-6);
    Some(((x0 - xpad)..(x1 + xpad), (y0 - ypad)..(y1 + ypad)))
}

/// A curve of a panel: its run's place among the runs (its colour), its label and points.
type Line<'a> = (usize, String, &'a Curve);

/// One panel: every run's curve over kimg, with a legend naming them when `legend` (several
/// runs: also where only one of them has a curve here).
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    curves: &[Line],
    legend: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
    let Some((xs, ys)) = axes(curves) else {
        let style = ("sans-serif", 22).into_font().color(&BLACK);
        area.titled(title, ("sans-serif", 24))
            .map_err(err)?
            .draw_text("no values yet", &style, (200, 150))
            .map_err(err)?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("kimg")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    for (i, name, c) in curves {
        let color = Palette99::pick(*i).to_rgba();
        if c.len() == 1 {
            chart
                .draw_series(c.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
        }
        let s = chart
            .draw_series(LineSeries::new(c.iter().copied(), color.stroke_width(2)))
            .map_err(err)?;
        s.label(name.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
        });
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// `progress.png` of the run in `dir`.
pub fn progress_png(dir: &Path) -> Result<PathBuf> {
    let out = dir.join("progress.png");
    draw(&[RunCurves::read(dir)?], &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runs, the second alone with an FID curve: that curve is drawn in the second run's
    /// colour, as its loss curves are.
    #[test]
    fn a_run_keeps_its_colour_in_every_panel() {
        let run = |name: &str, fid: Option<(String, Curve)>| RunCurves {
            name: name.into(),
            g_loss: vec![(0.0, 1.0), (1.0, 2.0)],
            d_loss: vec![(0.0, 1.0), (1.0, 2.0)],
            sec_per_kimg: vec![(0.0, 1.0), (1.0, 2.0)],
            fid,
        };
        let fid = Some(("fid50k_full".to_string(), vec![(0.0, 300.0), (1.0, 200.0)]));
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("p.png");
        draw(&[run("a", None), run("b", fid)], &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        let (w, h) = img.dimensions();
        // the FID panel is the lower left quarter
        let has =
            |rgb: [u8; 3]| (h / 2..h).any(|y| (0..w / 2).any(|x| img.get_pixel(x, y).0 == rgb));
        let colour = |i: usize| {
            let (r, g, b) = Palette99::pick(i).rgb();
            [r, g, b]
        };
        assert!(has(colour(1)), "the second run's colour");
        assert!(!has(colour(0)), "not the first run's");
    }

    #[test]
    fn axes_hold_every_point_and_give_a_lone_point_a_readable_range() {
        let empty = vec![];
        assert!(axes(&[(0, "a".into(), &empty)]).is_none());
        let (a, b): (Curve, Curve) = (vec![(0.0, 300.0), (2.0, 200.0)], vec![(1.0, 150.0)]);
        let (xs, ys) = axes(&[(0, "a".into(), &a), (1, "b".into(), &b)]).unwrap();
        assert_eq!(xs, 0.0..2.0);
        assert!(
            ys.start < 150.0 && ys.end > 300.0 && ys.end - ys.start < 200.0,
            "{ys:?}"
        );
        // one FID at one kimg: both ranges around it, wide enough for distinct tick labels
        let lone = vec![(4.0, 186.1)];
        let (xs, ys) = axes(&[(0, "a".into(), &lone)]).unwrap();
        assert!(
            xs.start < 4.0 && xs.end > 4.0 && xs.end - xs.start >= 0.4,
            "{xs:?}"
        );
        assert!(
            ys.start < 186.1 && ys.end > 186.1 && ys.end - ys.start >= 3.0,
            "{ys:?}"
        );
    }

    #[test]
    fn the_fid_curve_is_in_kimg_order_with_a_rescored_snapshot_s_latest_score() {
        let tmp = tempfile::tempdir().unwrap();
        let line = |kimg: i64, fid: f64| {
            format!(
                "{{\"results\": {{\"fid50k_full\": {fid}}}, \"snapshot_pkl\": \"{}\"}}\n",
                crate::snapshot::snapshot_name(kimg * 1000)
            )
        };
        let stats = "{\"Progress/kimg\": {\"mean\": 0.0}, \"Loss/G/loss\": {\"mean\": 1.0}}\n";
        std::fs::write(tmp.path().join("stats.jsonl"), stats).unwrap();
        let metric = [line(8, 80.0), line(4, 90.0), line(8, 70.0), line(12, 60.0)].concat();
        std::fs::write(tmp.path().join("metric-fid50k_full.jsonl"), metric).unwrap();
        let (name, curve) = RunCurves::read(tmp.path()).unwrap().fid.unwrap();
        assert_eq!(name, "fid50k_full");
        assert_eq!(curve, vec![(4.0, 90.0), (8.0, 70.0), (12.0, 60.0)]);
    }
}
