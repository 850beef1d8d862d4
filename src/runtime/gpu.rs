//! The pool of GPUs that local trials share through `CUDA_VISIBLE_DEVICES`.

use std::process::Command;
use std::sync::{Arc, Mutex};

/// GPUs not in use, shared with the tasks that return them when a trial exits.
#[derive(Debug, Clone, Default)]
pub struct GpuPool {
    total: usize,
    free: Arc<Mutex<Vec<String>>>,
}

impl GpuPool {
    /// A pool of these device ids.
    pub fn new(ids: Vec<String>) -> GpuPool {
        GpuPool {
            total: ids.len(),
            free: Arc::new(Mutex::new(ids)),
        }
    }

    /// The GPUs `nvidia-smi -L` lists (none when it is absent or fails).
    pub fn detect() -> GpuPool {
        let ids = Command::new("nvidia-smi")
            .arg("-L")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| parse_nvidia_smi_list(&String::from_utf8_lossy(&out.stdout)))
            .unwrap_or_default();
        GpuPool::new(ids)
    }

    /// Number of GPUs in the pool.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Number free now.
    pub fn free(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Takes `n` GPUs, lowest ids first, or none if fewer are free.
    pub fn take(&self, n: usize) -> Option<Vec<String>> {
        if n == 0 {
            return Some(Vec::new());
        }
        let mut free = self.free.lock().ok()?;
        if free.len() < n {
            return None;
        }
        Some(free.drain(..n).collect())
    }

    /// Gives GPUs back.
    pub fn give_back(&self, ids: Vec<String>) {
        if let Ok(mut free) = self.free.lock() {
            free.extend(ids);
            free.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
        }
    }
}

/// `GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)` lines → `["0", ...]`.
pub fn parse_nvidia_smi_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("GPU "))
        .filter_map(|rest| rest.split(':').next())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

/// Parses `--gpus 0,1,3` (empty string: no GPUs).
pub fn parse_gpu_list(text: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = text
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        if !seen.insert(id) {
            return Err(format!("GPU {id} is listed twice"));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_output() {
        let text =
            "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)\nGPU 1: NVIDIA H100 (UUID: GPU-5678)\n";
        assert_eq!(parse_nvidia_smi_list(text), vec!["0", "1"]);
        assert!(parse_nvidia_smi_list("No devices found.\n").is_empty());
    }

    #[test]
    fn take_and_give_back() {
        let pool = GpuPool::new(vec!["0".into(), "1".into(), "2".into()]);
        let a = pool.take(2).unwrap();
        assert_eq!(a, vec!["0", "1"]);
        assert_eq!(pool.take(2), None);
        pool.give_back(a);
        assert_eq!(pool.free(), 3);
        assert_eq!(pool.take(3).unwrap(), vec!["0", "1", "2"]);
    }

    #[test]
    fn gpu_list_flag() {
        assert_eq!(parse_gpu_list("0, 2").unwrap(), vec!["0", "2"]);
        assert!(parse_gpu_list("").unwrap().is_empty());
        assert!(parse_gpu_list("1,1").is_err());
    }
}
