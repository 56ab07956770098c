//! Small value parsers shared by the commands: sample grids (`8x4`) and seed lists (`0-63,100`).
use anyhow::{bail, Result};

/// Parse `COLSxROWS`.
pub fn parse_grid(s: &str) -> Result<(i64, i64)> {
    let bad = || anyhow::anyhow!("bad grid '{s}': use COLSxROWS such as 8x4");
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (c, r): (i64, i64) = (
        c.trim().parse().map_err(|_| bad())?,
        r.trim().parse().map_err(|_| bad())?,
    );
    if c < 1 || r < 1 {
        return Err(bad());
    }
    if c.saturating_mul(r) > 4096 {
        bail!(
            "grid '{s}' has {} cells; at most 4096 (such as 64x64)",
            c.saturating_mul(r)
        );
    }
    Ok((c, r))
}

/// Most seeds one `--seeds` may name (one PNG each).
pub const MAX_SEEDS: usize = 100_000;

/// Parse `0-63`, `1,5,9` or a mix like `0-3,10`.
pub fn parse_seeds(s: &str) -> Result<Vec<u32>> {
    let mut out: Vec<u32> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("bad --seeds '{s}': use e.g. 0-63 or 1,5,9");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if b < a {
                    bail!("--seeds '{s}': the range {part} runs backwards; write {b}-{a}");
                }
                if out.len() as u64 + (b - a) as u64 + 1 > MAX_SEEDS as u64 {
                    bail!("--seeds '{s}' names more than {MAX_SEEDS} seeds; generate in parts");
                }
                out.extend(a..=b);
            }
            None if out.len() >= MAX_SEEDS => {
                bail!("--seeds '{s}' names more than {MAX_SEEDS} seeds; generate in parts")
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        bail!("--seeds is empty");
    }
    Ok(out)
}
