//! The networks in the order of the paper's figure: the generator, then the discriminator side
//! (feature network, DiffAugment, heads), from `layers`; `summary` and `info` measure them.
pub mod layers;
pub mod summary;

pub mod generator;

pub mod diffaug;
pub mod discriminator;
pub mod features;

pub mod info;
