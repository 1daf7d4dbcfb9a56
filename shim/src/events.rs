//! Task events to containerd (TaskCreate, TaskStart, TaskExit, TaskOOM, TaskDelete and the
//! exec ones), sent in order from one thread: a request being answered never waits on
//! containerd, and containerd never sees an exit before the start it follows.

use std::sync::mpsc::{Sender, channel};

use containerd_shim::Context;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::publisher::RemotePublisher;

/// Where a task's events go.
#[derive(Clone)]
pub struct Events {
    tx: Sender<(&'static str, Box<dyn MessageDyn>)>,
}

impl Events {
    /// Sends what it is given through `publisher`, in the containerd namespace `namespace`.
    pub fn start(publisher: RemotePublisher, namespace: String) -> Events {
        let (tx, rx) = channel::<(&'static str, Box<dyn MessageDyn>)>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for (topic, event) in rx {
                    if let Err(e) = publisher.publish(Context::default(), topic, &namespace, event)
                    {
                        log::warn!("publishing {topic}: {e}");
                    }
                }
            })
            .expect("starting the events thread");
        Events { tx }
    }

    /// Queues `event` on `topic`.
    pub fn send(&self, topic: &'static str, event: impl MessageDyn) {
        let _ = self.tx.send((topic, Box::new(event)));
    }
}
