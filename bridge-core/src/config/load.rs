//! Placeholder until the config loader lands.
use std::path::Path;

use super::Config;
use crate::diag::InputError;

pub fn load(_path: &Path) -> Result<Config, InputError> {
    unimplemented!("config loader")
}

pub fn parse(_path: &Path, _text: &str) -> Result<Config, InputError> {
    unimplemented!("config loader")
}
