//! Entra ID tokens. (Being written.)
pub mod registry;
