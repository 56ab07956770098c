//! c10d process groups over Gloo on the CPU: real processes meet through a TCPStore and
//! all-reduce, broadcast, average gradients, copy rank 0's weights and wait at a barrier; bad
//! ranks and a missing rank 0 are clear errors.
mod common;

use fpgan::dist::ProcessGroup;
use std::process::{Command, Stdio};
use std::time::Duration;
use tch::{Device, Kind, Tensor};

const RANK: &str = "FPGAN_TEST_RANK";
const PORT: &str = "FPGAN_TEST_PORT";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn arange(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Float, Device::Cpu))
}

/// One rank of `two_processes_reduce_and_broadcast`, started by it in its own process.
#[test]
#[ignore = "a rank of two_processes_reduce_and_broadcast, which starts it"]
fn rank_worker() {
    let rank: usize = std::env::var(RANK).unwrap().parse().unwrap();
    let port: u16 = std::env::var(PORT).unwrap().parse().unwrap();
    let g = ProcessGroup::gloo("127.0.0.1", port, rank, 2, Duration::from_secs(60)).unwrap();
    let mut t = arange(1 << 20) * (rank as f64 + 1.0);
    g.all_reduce_sum(&mut t).unwrap();
    assert!(t.equal(&(arange(1 << 20) * 3.0)), "rank {rank}: sum");
    for root in 0..2 {
        let mut b = Tensor::full([5], rank as f64, (Kind::Float, Device::Cpu));
        g.broadcast(&mut b, root).unwrap();
        assert!(b.equal(&Tensor::full([5], root as f64, (Kind::Float, Device::Cpu))));
    }
    // gradients: rank r has (r+1) * x and 10 * (r+1) * y; the average is 1.5x and 15y
    let (x, y) = (arange(6).view([2, 3]), arange(4));
    let params: Vec<Tensor> = [&x, &y]
        .iter()
        .map(|t| t.zeros_like().set_requires_grad(true))
        .collect();
    let r1 = rank as f64 + 1.0;
    let loss = (&params[0] * (&x * r1)).sum(Kind::Float)
        + (&params[1] * (&y * (10.0 * r1))).sum(Kind::Float);
    loss.backward();
    g.average_gradients(&params.iter().collect::<Vec<_>>())
        .unwrap();
    assert!(params[0].grad().equal(&(&x * 1.5)) && params[1].grad().equal(&(&y * 15.0)));
    // rank 0's weights everywhere
    let w = Tensor::full([3], rank as f64 + 7.0, (Kind::Float, Device::Cpu));
    g.broadcast_from_rank0(&[&w]).unwrap();
    assert!(w.equal(&Tensor::full([3], 7.0, (Kind::Float, Device::Cpu))));
    g.barrier().unwrap();
    println!("rank {rank} of {} ok", g.world);
}

#[test]
fn two_processes_reduce_and_broadcast() {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|r| {
            Command::new(&exe)
                .args(["--exact", "rank_worker", "--ignored", "--nocapture"])
                .env(RANK, r.to_string())
                .env(PORT, &port)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (r, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains(&format!("rank {r} of 2 ok")),
            "rank {r}: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_group_of_one_reduces_to_itself() {
    let g = ProcessGroup::gloo("127.0.0.1", free_port(), 0, 1, Duration::from_secs(30)).unwrap();
    let mut t = arange(7);
    g.all_reduce_sum(&mut t).unwrap();
    g.broadcast(&mut t, 0).unwrap();
    g.barrier().unwrap();
    assert!(t.equal(&arange(7)));
}

#[test]
fn bad_ranks_and_a_missing_rank_0_are_errors() {
    let e = ProcessGroup::gloo("127.0.0.1", 1, 2, 2, Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(
        format!("{e}").contains("rank 2 is not in a group of 2"),
        "{e}"
    );
    let port = free_port();
    let e = ProcessGroup::gloo("127.0.0.1", port, 1, 2, Duration::from_secs(2))
        .err()
        .unwrap();
    let msg = format!("{e}");
    assert!(
        msg.contains(&format!(
            "cannot join the process group at 127.0.0.1:{port} as rank 1 of 2"
        )),
        "{msg}"
    );
}

/// One rank of `data_parallel_training_keeps_the_ranks_identical`: a tiny trainer seeded
/// differently from the other rank joins the group and trains two iterations on its own reals.
#[test]
#[ignore = "a rank of data_parallel_training_keeps_the_ranks_identical, which starts it"]
fn trainer_rank_worker() {
    let rank: usize = std::env::var(RANK).unwrap().parse().unwrap();
    let port: u16 = std::env::var(PORT).unwrap().parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = common::tiny_options(tmp.path());
    (opts.batch, opts.batch_gpu, opts.seed) = (2, 2, 10 + rank as u64);
    let mut t = fpgan::train::trainer::Trainer::new(&opts, Device::Cpu).unwrap();
    let g = ProcessGroup::gloo("127.0.0.1", port, rank, 2, Duration::from_secs(60)).unwrap();
    t.join(g).unwrap();
    assert_eq!(t.rank_world(), (rank, 2));
    for _ in 0..2 {
        let reals = Tensor::randint(256, [2, 3, 128, 128], (Kind::Uint8, Device::Cpu));
        t.step(&reals, None).unwrap();
    }
    // parameters only: BN running statistics stay per rank, as the reference's
    let trainable: Vec<String> = t
        .gvs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .map(|(n, _)| n)
        .collect();
    let mut sums = Vec::new();
    for (vs, all) in [(&t.gvs, false), (&t.ema_vs, false), (&t.dvs, true)] {
        let mut vars: Vec<_> = vs
            .variables()
            .into_iter()
            .filter(|(n, v)| (all && v.requires_grad()) || trainable.contains(n))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        sums.extend(
            vars.iter()
                .map(|(_, v)| v.to_kind(Kind::Double).sum(Kind::Double).double_value(&[])),
        );
    }
    println!("rank {rank} state {sums:?}");
}

/// Two processes train data-parallel from different seeds and different reals: rank 0's
/// weights are copied at the start and the gradients averaged, so both end with the same
/// parameters (G, G_ema, D), bit for bit; the BN running statistics stay per rank, as the
/// reference's.
#[test]
fn data_parallel_training_keeps_the_ranks_identical() {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|r| {
            Command::new(&exe)
                .args(["--exact", "trainer_rank_worker", "--ignored", "--nocapture"])
                .env(RANK, r.to_string())
                .env(PORT, &port)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let states: Vec<String> = children
        .into_iter()
        .enumerate()
        .map(|(r, c)| {
            let o = c.wait_with_output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                o.status.success(),
                "rank {r}: {out}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("rank {r} state")))
                .unwrap();
            line.split_once("state").unwrap().1.to_string()
        })
        .collect();
    assert_eq!(
        states[0], states[1],
        "the ranks' weights differ after training"
    );
}
