//! The shim's life as containerd drives it: `start` (spawn the serving shim, print its
//! address), serving the task API until `shutdown`, and `delete` (clean up after a shim that
//! died: its task's processes, cgroup and rootfs mount).

use std::sync::Arc;

use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, Error, ExitSignal, Flags, StartOpts};

use crate::state::Saved;
use crate::task::TaskService;

/// containerd's view of the shim.
pub struct Service {
    namespace: String,
    id: String,
    exit: Arc<ExitSignal>,
}

impl containerd_shim::Shim for Service {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Service {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        // One shim per task.
        let grouping = opts.id.clone();
        let (_pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, Error> {
        // Run in the bundle folder, after the serving shim died.
        let bundle = std::env::current_dir().map_err(|e| Error::Other(e.to_string()))?;
        let mut resp = DeleteResponse::new();
        if let Some(saved) = Saved::load(&bundle) {
            log::info!("cleaning up task {} after its shim", self.id);
            resp.pid = saved.pid as u32;
            saved.clean_up(&bundle);
        }
        // As runc's shim: killed.
        resp.exit_status = 128 + nix::libc::SIGKILL as u32;
        resp.exited_at = Some(containerd_shim::util::timestamp()?).into();
        Ok(resp)
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        TaskService::new(publisher, self.namespace.clone(), self.exit.clone())
    }
}
