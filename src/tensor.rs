//! Shapes and host-side volumes: the leaf every other module may use (it uses none of them).

/// Sizes of a channel-first C×T×H×W volume (one clip; the batch is a loop outside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub c: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub fn new(c: usize, t: usize, h: usize, w: usize) -> Self {
        Dims { c, t, h, w }
    }
    /// Positions per channel, T·H·W.
    pub fn positions(&self) -> usize {
        self.t * self.h * self.w
    }
    pub fn len(&self) -> usize {
        self.c * self.positions()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A host-side C×T×H×W float volume, row-major (w fastest).
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub dims: Dims,
    pub data: Vec<f32>,
}
