//! Hinge loss of Projected GAN (reference section 6): means over all B*N logits.
use tch::{Kind, Tensor};

/// G phase: mean(-D(G(z))).
pub fn generator_loss(fake_logits: &Tensor) -> Tensor {
    -fake_logits.mean(Kind::Float)
}

/// D phase, fake part: mean(relu(1 + D(G(z)))).
pub fn discriminator_fake_loss(fake_logits: &Tensor) -> Tensor {
    (fake_logits + 1.0).relu().mean(Kind::Float)
}

/// D phase, real part: mean(relu(1 - D(x))).
pub fn discriminator_real_loss(real_logits: &Tensor) -> Tensor {
    (-real_logits + 1.0).relu().mean(Kind::Float)
}
