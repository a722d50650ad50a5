//! Process creation and reaping.
