//! Placeholder replaced by the hostile-server battery.
