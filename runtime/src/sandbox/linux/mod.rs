//! The native Linux sandbox: namespaces, an overlay rootfs with pivot_root, cgroup limits,
//! capabilities, no_new_privs and a seccomp filter.

pub mod capabilities;
pub mod cgroups;
pub mod exe_seal;
pub mod init;
pub mod nsexec;
pub mod pid1;
pub mod rootfs;
pub mod runner;
pub mod seccomp;
pub mod seccomp_profile;
pub mod status;
pub mod task;
pub mod userns;
