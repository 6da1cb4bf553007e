//! engine::template (being built).
