//! The networks, in the order of the paper's figure: the generator, then the discriminator side
//! (frozen feature network with its random projections, DiffAugment, the four heads), built from
//! `layers`; `summary` and `info` count their parameters and multiply-accumulates.
pub mod layers;
pub mod summary;

pub mod generator;

pub mod diffaug;
pub mod discriminator;
pub mod features;

pub mod info;
