//! `fpgan info`: modules, output shapes, parameters and GMACs of one configuration.
use crate::nets::generator::{GenCfg, GeneratorConfig};
use crate::nets::info;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Generator configuration.
    #[arg(long, value_enum, default_value_t = GenCfg::Faster)]
    pub cfg: GenCfg,
    /// Image resolution: 128, 256, 512 or 1024.
    #[arg(long, default_value_t = 256)]
    pub res: i64,
    /// Generator width (reference 128).
    #[arg(long, default_value_t = 128)]
    pub ngf: i64,
    /// Classes of a class-conditional model (0: unconditional).
    #[arg(long, value_name = "C", default_value_t = 0)]
    pub classes: i64,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let config = GeneratorConfig {
        ngf: a.ngf,
        classes: a.classes,
        ..GeneratorConfig::new(a.cfg, a.res)
    };
    let sections = info::summarize(&config)?;
    print!("{}", info::render(&config, &sections));
    Ok(())
}
