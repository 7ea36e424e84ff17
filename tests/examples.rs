//! The examples the documentation points at are valid.

use std::path::Path;

#[test]
fn the_example_config_and_the_shipped_mapping_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = bridge_core::config::load(&root.join("bridge.example.toml"))
        .unwrap_or_else(|e| panic!("bridge.example.toml does not load:\n{e}"));
    assert_eq!(config.syncs.len(), 1);
    assert_eq!(
        config.sources[0].scope,
        "https://graph.microsoft.com/.default"
    );
    assert!(config.ticket_systems[0].mapping.fields.len() >= 5);
}
