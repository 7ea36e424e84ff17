//! Key Vault: secrets referenced as `{ key_vault = "https://NAME.vault.azure.net/secrets/NAME" }`.

pub mod cell;

pub use cell::{SecretCell, SecretFetch};
