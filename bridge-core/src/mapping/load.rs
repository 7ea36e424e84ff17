//! Placeholder until the mapping loader lands.
use std::path::Path;

use super::Mapping;
use crate::diag::InputError;

pub fn load(_path: &Path) -> Result<Mapping, InputError> {
    unimplemented!("mapping loader")
}

pub fn parse(_path: &Path, _text: &str) -> Result<Mapping, InputError> {
    unimplemented!("mapping loader")
}
