//! containerd's task API (shim v2) over the shim's task and its execs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim::api;
use containerd_shim::monitor::{Subject, Topic};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::topics::*;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};

use crate::events::Events;
use crate::exec::Exec;
use crate::instance::{Instance, Request, Spawner};
use crate::life::Phase;

/// How long an exit waits for its terminal's output to be copied out (a child the process
/// left may hold the terminal open for ever).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// The task service: the shim's task (one per shim) and its execs.
#[derive(Clone)]
pub struct TaskService(Arc<Inner>);

struct Inner {
    events: Events,
    exit: Arc<ExitSignal>,
    spawner: Spawner,
    tasks: Mutex<HashMap<String, Arc<Instance>>>,
    execs: Mutex<HashMap<(String, String), Arc<Exec>>>,
    /// Exits of pids not known yet (a process that ended before its start returned).
    unclaimed: Mutex<HashMap<i32, i32>>,
}

fn status(code: Code, message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message.into()))
}

fn failed(message: String) -> ttrpc::Error {
    status(Code::FAILED_PRECONDITION, message)
}

fn stamp(at: SystemTime) -> Timestamp {
    Timestamp::from(at)
}

impl TaskService {
    /// The service, publishing to `publisher` in `namespace`; `exit` ends the shim.
    pub fn new(publisher: RemotePublisher, namespace: String, exit: Arc<ExitSignal>) -> Self {
        let service = TaskService(Arc::new(Inner {
            events: Events::start(publisher, namespace),
            exit,
            spawner: Spawner::start(),
            tasks: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            unclaimed: Mutex::new(HashMap::new()),
        }));
        // Subscribed before anything is spawned: no exit goes unseen.
        match containerd_shim::monitor::monitor_subscribe(Topic::Pid) {
            Ok(sub) => {
                let s = service.clone();
                std::thread::Builder::new()
                    .name("exits".into())
                    .spawn(move || {
                        for e in sub.rx.iter() {
                            if let Subject::Pid(pid) = e.subject {
                                s.reaped(pid, e.exit_code);
                            }
                        }
                    })
                    .expect("starting the exits thread");
            }
            Err(e) => log::error!("subscribing to exits: {e}"),
        }
        service
    }

    fn task(&self, id: &str) -> TtrpcResult<Arc<Instance>> {
        self.0
            .tasks
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| status(Code::NOT_FOUND, format!("task {id} not found")))
    }

    fn exec(&self, id: &str, exec_id: &str) -> TtrpcResult<Arc<Exec>> {
        self.0
            .execs
            .lock()
            .unwrap()
            .get(&(id.to_string(), exec_id.to_string()))
            .cloned()
            .ok_or_else(|| {
                status(
                    Code::NOT_FOUND,
                    format!("exec {exec_id} of task {id} not found"),
                )
            })
    }

    /// A child of the shim was reaped: a task's `__init`, or an exec.
    fn reaped(&self, pid: i32, code: i32) {
        let task = {
            let tasks = self.0.tasks.lock().unwrap();
            tasks.values().find(|t| t.init_pid == pid).cloned()
        };
        if let Some(t) = task {
            self.task_exited(&t, code);
            return;
        }
        let exec = {
            let execs = self.0.execs.lock().unwrap();
            execs
                .iter()
                .find(|(_, e)| e.pid() == Some(pid))
                .map(|((id, _), e)| (id.clone(), e.clone()))
        };
        match exec {
            Some((id, e)) => self.exec_exited(&id, &e, code),
            None => {
                self.0.unclaimed.lock().unwrap().insert(pid, code);
            }
        }
    }

    fn task_exited(&self, t: &Instance, code: i32) {
        // Recorded first: a kill from now on does not reach a pid that may be reused.
        let oom = t.exited(code);
        // Then the events, once the terminal's output is out.
        if let Some(c) = &t.console {
            c.wait_drained(DRAIN_LIMIT);
        }
        if oom {
            self.0.events.send(
                TASK_OOM_EVENT_TOPIC,
                TaskOOM {
                    container_id: t.id.clone(),
                    ..Default::default()
                },
            );
        }
        let (status, at) = t.wait();
        self.0.events.send(
            TASK_EXIT_EVENT_TOPIC,
            TaskExit {
                container_id: t.id.clone(),
                id: t.id.clone(),
                pid: t.pid as u32,
                exit_status: status,
                exited_at: Some(stamp(at)).into(),
                ..Default::default()
            },
        );
    }

    fn exec_exited(&self, id: &str, e: &Exec, code: i32) {
        e.exited(code);
        let console = e.console.lock().unwrap().clone();
        if let Some(c) = console {
            c.wait_drained(DRAIN_LIMIT);
        }
        let (status, at) = e.wait();
        self.0.events.send(
            TASK_EXIT_EVENT_TOPIC,
            TaskExit {
                container_id: id.to_string(),
                id: e.id.clone(),
                pid: e.pid().unwrap_or_default() as u32,
                exit_status: status,
                exited_at: Some(stamp(at)).into(),
                ..Default::default()
            },
        );
    }

    /// An exit seen before its pid was known.
    fn claim(&self, pid: i32) -> Option<i32> {
        self.0.unclaimed.lock().unwrap().remove(&pid)
    }
}

fn phase_status(phase: Phase) -> (api::Status, u32, Option<Timestamp>) {
    match phase {
        Phase::Created => (api::Status::CREATED, 0, None),
        Phase::Running => (api::Status::RUNNING, 0, None),
        Phase::Stopped(code, at) => (api::Status::STOPPED, code, Some(stamp(at))),
    }
}

impl containerd_shim::Task for TaskService {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        if self.0.tasks.lock().unwrap().contains_key(&req.id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("task {} exists already", req.id),
            ));
        }
        if !req.checkpoint.is_empty() {
            return Err(status(
                Code::UNIMPLEMENTED,
                "berth's shim does not restore checkpoints",
            ));
        }
        let request = Request {
            id: req.id.clone(),
            bundle: req.bundle.clone().into(),
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
            rootfs: req.rootfs.to_vec(),
        };
        let instance = Arc::new(Instance::create(request, &self.0.spawner).map_err(failed)?);
        let pid = instance.pid;
        self.0
            .tasks
            .lock()
            .unwrap()
            .insert(req.id.clone(), instance.clone());
        self.0.events.send(
            TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        if let Some(code) = self.claim(instance.init_pid) {
            self.task_exited(&instance, code);
        }
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let task = self.task(&req.id)?;
        if !req.exec_id.is_empty() {
            let e = self.exec(&req.id, &req.exec_id)?;
            let pid = e.start(&task.bundle).map_err(failed)?;
            self.0.events.send(
                TASK_EXEC_STARTED_EVENT_TOPIC,
                TaskExecStarted {
                    container_id: req.id.clone(),
                    exec_id: req.exec_id.clone(),
                    pid: pid as u32,
                    ..Default::default()
                },
            );
            if let Some(code) = self.claim(pid) {
                self.exec_exited(&req.id, &e, code);
            }
            return Ok(api::StartResponse {
                pid: pid as u32,
                ..Default::default()
            });
        }
        task.start().map_err(failed)?;
        self.0.events.send(
            TASK_START_EVENT_TOPIC,
            TaskStart {
                container_id: req.id.clone(),
                pid: task.pid as u32,
                ..Default::default()
            },
        );
        Ok(api::StartResponse {
            pid: task.pid as u32,
            ..Default::default()
        })
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let task = self.task(&req.id)?;
        let mut resp = api::StateResponse {
            id: req.id.clone(),
            bundle: task.bundle.display().to_string(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        };
        let phase = if req.exec_id.is_empty() {
            resp.pid = task.pid as u32;
            resp.stdin = task.stdin.clone();
            resp.stdout = task.stdout.clone();
            resp.stderr = task.stderr.clone();
            task.phase()
        } else {
            let e = self.exec(&req.id, &req.exec_id)?;
            resp.pid = e.pid().unwrap_or_default() as u32;
            resp.stdin = e.stdin.clone();
            resp.stdout = e.stdout.clone();
            resp.stderr = e.stderr.clone();
            e.phase()
        };
        let (s, code, at) = phase_status(phase);
        resp.status = s.into();
        resp.exit_status = code;
        resp.exited_at = at.into();
        Ok(resp)
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let task = self.task(&req.id)?;
        let (code, at) = if req.exec_id.is_empty() {
            task.wait()
        } else {
            self.exec(&req.id, &req.exec_id)?.wait()
        };
        Ok(api::WaitResponse {
            exit_status: code,
            exited_at: Some(stamp(at)).into(),
            ..Default::default()
        })
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let task = self.task(&req.id)?;
        if req.exec_id.is_empty() {
            task.kill(req.signal, req.all).map_err(failed)?;
        } else {
            self.exec(&req.id, &req.exec_id)?
                .kill(req.signal)
                .map_err(failed)?;
        }
        Ok(api::Empty::new())
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        let task = self.task(&req.id)?;
        if !req.exec_id.is_empty() {
            let e = self.exec(&req.id, &req.exec_id)?;
            if e.phase() == Phase::Running {
                return Err(failed(format!(
                    "exec {} is still running: kill it first",
                    e.id
                )));
            }
            self.0
                .execs
                .lock()
                .unwrap()
                .remove(&(req.id.clone(), req.exec_id.clone()));
            let (_, code, at) = phase_status(e.phase());
            return Ok(api::DeleteResponse {
                pid: e.pid().unwrap_or_default() as u32,
                exit_status: code,
                exited_at: at.into(),
                ..Default::default()
            });
        }
        let (code, at) = match task.phase() {
            Phase::Running => {
                return Err(failed(format!(
                    "task {} is still running: kill it first",
                    req.id
                )));
            }
            Phase::Stopped(code, at) => (code, at),
            Phase::Created => {
                // Never started: its PID 1 goes with its cgroup.
                task.kill(nix::libc::SIGKILL as u32, true).map_err(failed)?;
                task.wait()
            }
        };
        task.clean_up();
        self.0.tasks.lock().unwrap().remove(&req.id);
        self.0.events.send(
            TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                pid: task.pid as u32,
                exit_status: code,
                exited_at: Some(stamp(at)).into(),
                ..Default::default()
            },
        );
        Ok(api::DeleteResponse {
            pid: task.pid as u32,
            exit_status: code,
            exited_at: Some(stamp(at)).into(),
            ..Default::default()
        })
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let task = self.task(&req.id)?;
        let processes = task
            .pids()
            .into_iter()
            .map(|pid| containerd_shim::protos::types::task::ProcessInfo {
                pid: pid as u32,
                ..Default::default()
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let task = self.task(&req.id)?;
        let key = (req.id.clone(), req.exec_id.clone());
        if self.0.execs.lock().unwrap().contains_key(&key) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("exec {} exists already", req.exec_id),
            ));
        }
        let spec = req.spec.clone().unwrap_or_default();
        let e = Exec::new(
            &task,
            &req.exec_id,
            &spec,
            [&req.stdin, &req.stdout, &req.stderr],
            req.terminal,
        )
        .map_err(|m| {
            if task.wasi {
                status(Code::UNIMPLEMENTED, m)
            } else {
                failed(m)
            }
        })?;
        self.0.execs.lock().unwrap().insert(key, Arc::new(e));
        self.0.events.send(
            TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        // A process without a terminal has nothing to resize.
        if req.exec_id.is_empty() {
            if let Some(c) = &self.task(&req.id)?.console {
                c.resize(req.width, req.height);
            }
        } else if let Some(c) = self
            .exec(&req.id, &req.exec_id)?
            .console
            .lock()
            .unwrap()
            .as_ref()
        {
            c.resize(req.width, req.height);
        }
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        // The workload holds containerd's stdin fifo itself, and the shim no copy of it: the
        // fifo closes when containerd's end does.
        self.task(&req.id)?;
        Ok(api::Empty::new())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let task = self.task(&req.id)?;
        let cgroup = containerd_shim::cgroup::get_cgroup(task.pid as u32)
            .map_err(|e| failed(format!("reading the cgroup of task {}: {e}", req.id)))?;
        let metrics = containerd_shim::cgroup::collect_metrics(&cgroup)
            .map_err(|e| failed(format!("reading the metrics of task {}: {e}", req.id)))?;
        let any = containerd_shim::util::convert_to_any(Box::new(metrics))
            .map_err(|e| failed(e.to_string()))?;
        Ok(api::StatsResponse {
            stats: Some(any).into(),
            ..Default::default()
        })
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self
            .0
            .tasks
            .lock()
            .unwrap()
            .get(&req.id)
            .map_or(0, |t| t.pid as u32);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        // containerd asks once a task is deleted; a shim with a task left keeps serving it.
        if self.0.tasks.lock().unwrap().is_empty() {
            self.0.exit.signal();
        }
        Ok(api::Empty::new())
    }
}
