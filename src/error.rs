//! One error type for the engine: every bad input ends here with a message a user can act on.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// The weights file is not a usable VideoGPT checkpoint (corrupt, truncated, wrong keys or shapes).
    Weights(String),
    /// An input (video, tokens, argument) does not fit the model or the format.
    Input(String),
    /// No GPU adapter, an adapter limit exceeded, a shader or device error.
    Gpu(String),
    /// The GPU device was lost (driver reset, browser reclaimed it); the work can be retried.
    DeviceLost(String),
    /// Reading or writing a file, or running an external tool.
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Weights(m) => write!(f, "invalid model weights: {m}"),
            Error::Input(m) => write!(f, "invalid input: {m}"),
            Error::Gpu(m) => write!(f, "GPU error: {m}"),
            Error::DeviceLost(m) => write!(f, "GPU device lost: {m}"),
            Error::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// `bail!(Input, "...")` — return early with a formatted error of the given kind.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => { return Err($crate::Error::$kind(format!($($arg)*))) };
}
