//! The last step of the media path: decoded frames wait here for the app, newest kept ([`FrameQueue`]).

mod frame_queue;

pub use frame_queue::FrameQueue;
