//! Reference integrity manifests.
