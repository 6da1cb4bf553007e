//! engine::log (being built).
