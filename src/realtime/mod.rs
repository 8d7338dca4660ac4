//! Live updates to the agents' browsers: the broadcast hub and one loop per WebSocket.

pub mod events;
pub mod hub;
pub mod relay;
pub mod socket;

pub use events::{Change, Event};
pub use hub::Hub;
pub use relay::{Relay, RelayState};
