//! The pickle reader on pickles made by Python (the project venv's): plain data in every
//! protocol from 3 on (Python 3's; protocol 2 pickles bytes through a codecs call), shared references, an OrderedDict, objects as data; globals off the
//! allow-list refused unread; damaged pickles give errors, not crashes.
mod common;

use common::{text, venv_python};
use fpgan::snapshot::pickle::{read, Value};
use std::process::Command;

/// Pickle the Python expression `expr` (after `setup`) with `protocol`; its bytes.
fn pickled(setup: &str, expr: &str, protocol: u8) -> Vec<u8> {
    let code = format!(
        "import pickle, sys, collections\n{setup}\nsys.stdout.buffer.write(pickle.dumps({expr}, protocol={protocol}))"
    );
    let o = Command::new(venv_python())
        .args(["-c", &code])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    o.stdout
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn only_collections(m: &str, n: &str) -> bool {
    m == "collections" && n == "OrderedDict"
}

#[test]
fn plain_data_in_every_protocol() {
    let expr = r#"{"a": [1, -2, 3.5, "x", b"\x00\xff", None, True, False], "t": (1, (2, 3)),
                  "big": 2**40, "neg": -300}"#;
    let want = Value::Dict(vec![
        (
            s("a"),
            Value::List(vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(3.5),
                s("x"),
                Value::Bytes(vec![0, 255]),
                Value::None,
                Value::Bool(true),
                Value::Bool(false),
            ]),
        ),
        (
            s("t"),
            Value::Tuple(vec![
                Value::Int(1),
                Value::Tuple(vec![Value::Int(2), Value::Int(3)]),
            ]),
        ),
        (s("big"), Value::Int(1 << 40)),
        (s("neg"), Value::Int(-300)),
    ]);
    for p in 3..=5 {
        let got = read(&pickled("", expr, p), &|_, _| false).unwrap();
        assert_eq!(got, want, "protocol {p}");
    }
}

#[test]
fn shared_references_and_objects_are_data() {
    // a list referenced twice and filled after its first use, and an OrderedDict
    let setup = "l = [1]\nd = collections.OrderedDict([('w', l)])\nobj = {'x': l, 'y': l, 'od': d}";
    let got = read(&pickled(setup, "obj", 4), &only_collections).unwrap();
    let l = Value::List(vec![Value::Int(1)]);
    let Value::Dict(items) = got else {
        panic!("{got:?}")
    };
    assert_eq!(items[0], (s("x"), l.clone()));
    assert_eq!(items[1], (s("y"), l.clone()));
    let Value::Call {
        func, items: od, ..
    } = &items[2].1
    else {
        panic!("{items:?}")
    };
    assert_eq!(
        **func,
        Value::Global("collections".into(), "OrderedDict".into())
    );
    assert_eq!(od, &vec![(s("w"), l)]);
}

#[test]
fn references_back_to_an_enclosing_object_are_cycles() {
    // a list that holds itself, and an object whose state refers to the object (as a module's
    // hook that holds its module)
    let got = read(&pickled("a = [1]\na.append(a)", "a", 4), &|_, _| false).unwrap();
    assert_eq!(got, Value::List(vec![Value::Int(1), Value::Cycle]));
    let setup = "class O: pass\no = O()\no.me = {'m': o}\n__name__ = 'x'";
    let got = read(&pickled(setup, "o", 4), &|m, n| m == "__main__" && n == "O").unwrap();
    let Value::Call { state, .. } = got else {
        panic!("{got:?}")
    };
    let want = Value::Dict(vec![(s("m"), Value::Cycle)]);
    assert_eq!(*state, Value::Dict(vec![(s("me"), want)]));
}

#[test]
fn globals_off_the_allow_list_are_refused_unread() {
    let setup = "import os\nclass Evil:\n    def __reduce__(self):\n        return (os.system, ('echo pwned',))";
    let data = pickled(setup, "[Evil()]", 4);
    let e = read(&data, &only_collections).unwrap_err().to_string();
    assert!(e.contains("system") && e.contains("allow-list"), "{e}");
    // an allowed class becomes a call with its state
    let setup = "class P:\n    def __init__(self): self.k = 3";
    let module = "import types\nm = types.ModuleType('pg_modules.x')\nsys.modules['pg_modules'] = types.ModuleType('pg_modules')\nsys.modules['pg_modules.x'] = m\nP.__module__ = 'pg_modules.x'\nm.P = P";
    let data = pickled(&format!("{setup}\n{module}"), "P()", 4);
    let got = read(&data, &|m, _| {
        m.starts_with("pg_modules.") || m == "copyreg"
    })
    .unwrap();
    let Value::Call { state, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!(*state, Value::Dict(vec![(s("k"), Value::Int(3))]));
}

#[test]
fn damaged_pickles_give_errors() {
    let data = pickled("", r#"{"a": [1, 2.5, "x" * 300, b"y" * 70000]}"#, 4);
    assert!(read(&data, &|_, _| false).is_ok());
    for n in (0..data.len()).step_by(97) {
        assert!(read(&data[..n], &|_, _| false).is_err(), "prefix {n}");
    }
    // a list holding the same list twice, 60 deep: 2^60 values if copied out naively
    let bomb = pickled("x = []\nfor _ in range(60): x = [x, x]", "x", 4);
    let e = read(&bomb, &|_, _| false).unwrap_err().to_string();
    assert!(e.contains("refused") || e.contains("deeper"), "{e}");
    for (i, flip) in [(3usize, 0xffu8), (20, 0x5a), (40, 0x01)] {
        let mut d = data.clone();
        d[i] ^= flip;
        let _ = read(&d, &|_, _| false); // an error or some value, never a crash
    }
}

/// Tensors and parameters pickled by PyTorch (plain pickle: legacy torch.save blobs inside)
/// come back with their values, views included.
#[test]
fn pickled_tensors_are_rebuilt() {
    use fpgan::snapshot::torch_pickle::{tensor, tensor_global};
    use tch::{Kind, Tensor};
    let setup = "import torch\nt = torch.arange(6, dtype=torch.float32).reshape(2, 3)\n\
                 obj = {'t': t, 'view': t[:, 1:], 'p': torch.nn.Parameter(torch.ones(2)),\n\
                 'l': torch.arange(5), 'h': torch.tensor([0.5, -2.0], dtype=torch.float16)}";
    let got = read(&pickled(setup, "obj", 4), &tensor_global).unwrap();
    let Value::Dict(items) = got else {
        panic!("{got:?}")
    };
    let t = |k: &str| tensor(&items.iter().find(|(n, _)| *n == s(k)).unwrap().1).unwrap();
    let a = Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([2, 3]);
    assert!(t("t").equal(&a));
    assert!(t("view").equal(&a.narrow(1, 1, 2)));
    assert!(t("p").equal(&Tensor::ones([2], (Kind::Float, tch::Device::Cpu))));
    assert!(t("l").equal(&Tensor::arange(5, (Kind::Int64, tch::Device::Cpu))));
    assert_eq!(
        Vec::<f64>::try_from(t("h").to_kind(Kind::Double)).unwrap(),
        vec![0.5, -2.0]
    );
    // a tensor is not readable with the allow-list of plain data
    assert!(read(&pickled(setup, "obj", 4), &|_, _| false).is_err());
}

/// A pickled module (spectral-normalised conv and BN, hooks and all) gives its state dict.
#[test]
fn pickled_modules_give_their_state_dict() {
    use fpgan::snapshot::torch_pickle::{module_tensors, tensor_global};
    let setup = "import torch\ntorch.manual_seed(0)\n\
                 m = torch.nn.Sequential(torch.nn.utils.spectral_norm(torch.nn.Conv2d(2, 3, 1)),\n\
                 torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 1, 1, bias=False))\n\
                 m.register_buffer('scratch', torch.zeros(1), persistent=False)\n\
                 m(torch.randn(2, 2, 4, 4))\n\
                 sd = m.state_dict()\n\
                 obj = (m, list(sd.keys()), [v.double().sum().item() for v in sd.values()])";
    let allowed = |m: &str, n: &str| {
        tensor_global(m, n)
            || m.starts_with("torch.nn.modules.")
            || m == "torch.nn.utils.spectral_norm"
    };
    let got = read(&pickled(setup, "obj", 4), &allowed).unwrap();
    let Value::Tuple(parts) = got else {
        panic!("{got:?}")
    };
    let named = module_tensors(&parts[0]).unwrap();
    let (Value::List(keys), Value::List(sums)) = (&parts[1], &parts[2]) else {
        panic!()
    };
    let ours: Vec<Value> = named.iter().map(|(n, _)| s(n)).collect();
    assert_eq!(&ours, keys, "names and order of state_dict()");
    for ((n, t), want) in named.iter().zip(sums) {
        let Value::Float(want) = want else { panic!() };
        let got = t
            .to_kind(tch::Kind::Double)
            .sum(tch::Kind::Double)
            .double_value(&[]);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{n}: {got} vs {want}"
        );
    }
}
