//! Class labels in the dataset tool (conditional training): `--labels folders` and a
//! reference-format labels file, written into dataset.json in the reference's format and read
//! back by the loader; every defect is a clear error naming it.
mod common;

use common::{dataset, text};
use fpgan::data::ImageSet;
use serde_json::{json, Value};
use std::path::Path;

/// A small PNG of one colour at `path` (folders made as needed).
fn png(path: &Path, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(40, 40, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

fn labelled(src: &Path, dest: &Path, labels: &str) -> std::process::Output {
    dataset(src, dest, &["--resolution", "32", "--labels", labels])
}

fn dataset_json(dest: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dest.join("dataset.json")).unwrap()).unwrap()
}

#[test]
fn folders_name_the_classes_in_sorted_order() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    png(&src.join("water/a.png"), [0, 0, 255]);
    png(&src.join("fire/b.png"), [255, 0, 0]);
    png(&src.join("fire/c.png"), [250, 10, 0]);
    png(&src.join("grass/deeper/d.png"), [0, 255, 0]);
    std::fs::write(src.join("water/broken.png"), b"not an image").unwrap();
    let dest = tmp.path().join("out");
    let o = labelled(&src, &dest, "folders");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("3 classes"), "{}", text(&o.stdout));
    // sources in path order: fire/b, fire/c, grass/deeper/d, water/a (water/broken skipped)
    let want = json!({
        "labels": [["00000/img00000000.png", 0], ["00000/img00000001.png", 0],
                   ["00000/img00000002.png", 1], ["00000/img00000003.png", 2]],
        "class_names": ["fire", "grass", "water"],
        "sources": [["00000/img00000000.png", "fire/b.png"], ["00000/img00000001.png", "fire/c.png"],
                    ["00000/img00000002.png", "grass/deeper/d.png"], ["00000/img00000003.png", "water/a.png"]],
    });
    assert_eq!(dataset_json(&dest), want);
    let set = ImageSet::open(&dest).unwrap();
    assert_eq!(set.labels, Some(vec![0, 0, 1, 2]));
    // prepared again without --labels: its labels and class names are carried over, as the
    // reference's dataset_tool.py carries a source's dataset.json labels
    let carried = tmp.path().join("carried");
    let o = dataset(&dest, &carried, &["--resolution", "32"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("carried over (3 classes)"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        ImageSet::open(&carried).unwrap().labels,
        Some(vec![0, 0, 1, 2])
    );
    assert_eq!(
        dataset_json(&carried)["class_names"],
        json!(["fire", "grass", "water"])
    );
    // ... unless an image lacks one: then none, as there
    png(&dest.join("00000/img00000099.png"), [5, 5, 5]);
    let o = dataset(&dest, &tmp.path().join("partly"), &["--resolution", "32"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("does not label every image"),
        "{}",
        text(&o.stderr)
    );
    assert!(dataset_json(&tmp.path().join("partly"))["labels"].is_null());
    std::fs::remove_file(dest.join("00000/img00000099.png")).unwrap();
    // prepared again with its own dataset.json as the labels: the class names stay
    let again = tmp.path().join("again");
    let own = dest.join("dataset.json");
    let o = labelled(&dest, &again, own.to_str().unwrap());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        dataset_json(&again)["class_names"],
        json!(["fire", "grass", "water"])
    );
    // the class of an image is its folder's: the third written image is the green one
    let img = image::open(dest.join("00000/img00000002.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(img.get_pixel(16, 16).0, [0, 255, 0]);
}

#[test]
fn a_labels_file_in_the_reference_format_is_used_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for (n, c) in [
        ("x.png", [1, 2, 3]),
        ("y.png", [4, 5, 6]),
        ("sub/z.png", [7, 8, 9]),
    ] {
        png(&src.join(n), c);
    }
    let file = tmp.path().join("labels.json");
    let write = |v: Value| std::fs::write(&file, v.to_string()).unwrap();
    let f = file.to_str().unwrap();
    write(json!({"labels": [["x.png", 1], ["y.png", 0], ["sub\\z.png", 1]]}));
    let dest = tmp.path().join("out.zip");
    let o = labelled(&src, &dest, f);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // sorted sources: sub/z, x, y
    assert_eq!(ImageSet::open(&dest).unwrap().labels, Some(vec![1, 1, 0]));
    // every defect names what to fix
    let err = |v: Value| {
        write(v);
        let o = labelled(&src, &tmp.path().join("bad"), f);
        assert!(!o.status.success());
        text(&o.stderr)
    };
    let e = err(json!({"labels": [["x.png", 1], ["sub/z.png", 0]]}));
    assert!(
        e.contains("y.png") && e.contains("no label") && e.contains(f),
        "{e}"
    );
    let e = err(json!({"labels": [["x.png", -1], ["y.png", 0], ["sub/z.png", 0]]}));
    assert!(e.contains("x.png") && e.contains("-1"), "{e}");
    let e = err(json!({"labels": [["x.png", 2], ["y.png", 0], ["sub/z.png", 0]]}));
    assert!(
        e.contains("class 1") && e.contains("no usable image"),
        "{e}"
    );
    let e = err(json!({"images": []}));
    assert!(e.contains("not a labels file"), "{e}");
    let e = err(json!({"labels": [["x.png", 1], ["y.png", 0], ["sub/z.png", 1], ["y.png", 1]]}));
    assert!(e.contains("y.png is labelled twice, 0 and 1"), "{e}");
    assert!(
        !tmp.path().join("bad").exists(),
        "nothing is written on error"
    );
}

#[test]
fn folders_need_every_image_in_a_class_folder_and_every_class_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    png(&src.join("cats/a.png"), [9, 9, 9]);
    png(&src.join("stray.png"), [9, 9, 9]);
    let o = labelled(&src, &tmp.path().join("out"), "folders");
    let e = text(&o.stderr);
    assert!(
        !o.status.success() && e.contains("stray.png") && e.contains("class folder"),
        "{e}"
    );
    std::fs::remove_file(src.join("stray.png")).unwrap();
    // one class only: said (the usual cause is a zip of the folder above the classes)
    let o = labelled(&src, &tmp.path().join("one"), "folders");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("found one class, cats"),
        "{}",
        text(&o.stderr)
    );
    // --max-images that stops before a class is named as the cause
    png(&src.join("dogs/z.png"), [1, 1, 1]);
    let o = dataset(
        &src,
        &tmp.path().join("capped"),
        &[
            "--resolution",
            "32",
            "--labels",
            "folders",
            "--max-images",
            "1",
        ],
    );
    let e = text(&o.stderr);
    assert!(
        !o.status.success() && e.contains("raise --max-images"),
        "{e}"
    );
    std::fs::remove_file(src.join("dogs/z.png")).unwrap();
    // a class whose only image cannot be read is left empty
    std::fs::create_dir_all(src.join("dogs")).unwrap();
    std::fs::write(src.join("dogs/only.png"), b"broken").unwrap();
    let o = labelled(&src, &tmp.path().join("out"), "folders");
    let e = text(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("dogs")
            && e.contains("no usable image")
            && e.contains("remove the folder"),
        "{e}"
    );
}

/// Files without an image extension need no class: a README at the top, notes in a class folder
/// or a folder of notes alone are skipped with the usual warning (not a class of their own, not
/// "no label"); one that turns out to be an image is refused, naming it.
#[test]
fn files_without_an_image_extension_need_no_class() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    png(&src.join("cats/a.png"), [9, 9, 9]);
    png(&src.join("dogs/b.png"), [90, 90, 90]);
    std::fs::write(src.join("README.txt"), b"about these images").unwrap();
    std::fs::write(src.join("cats/notes.txt"), b"notes").unwrap();
    std::fs::create_dir_all(src.join("docs")).unwrap();
    std::fs::write(src.join("docs/credits.txt"), b"credits").unwrap();
    let dest = tmp.path().join("out");
    let o = labelled(&src, &dest, "folders");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("README.txt"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(dataset_json(&dest)["class_names"], json!(["cats", "dogs"]));
    let file = tmp.path().join("labels.json");
    std::fs::write(
        &file,
        json!({"labels": [["cats/a.png", 0], ["dogs/b.png", 1]]}).to_string(),
    )
    .unwrap();
    let o = labelled(&src, &tmp.path().join("out2"), file.to_str().unwrap());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        ImageSet::open(&tmp.path().join("out2")).unwrap().labels,
        Some(vec![0, 1])
    );
    // an image without an extension at the top has no class
    std::fs::copy(src.join("cats/a.png"), src.join("picture")).unwrap();
    let o = labelled(&src, &tmp.path().join("out3"), "folders");
    let e = text(&o.stderr);
    assert!(
        !o.status.success() && e.contains("picture") && e.contains("without a class"),
        "{e}"
    );
    assert!(
        !tmp.path().join("out3").exists(),
        "nothing is written on error"
    );
}

/// The reference's label vectors (2-D `labels`): each image's class is its vector's first
/// largest entry (the reference's networks read `c.argmax(1)`), and the classes are the vectors'
/// length (its `c_dim`), both in a labels file and in a prepared set's own dataset.json.
#[test]
fn label_vectors_give_the_argmax_and_their_length_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for (n, c) in [
        ("x.png", [1, 2, 3]),
        ("y.png", [4, 5, 6]),
        ("z.png", [7, 8, 9]),
    ] {
        png(&src.join(n), c);
    }
    let file = tmp.path().join("labels.json");
    let write = |v: Value| std::fs::write(&file, v.to_string()).unwrap();
    // x: class 1; y: a tie, the first; z: class 0 (classes 2, 3 of 4 have no image: an error)
    write(
        json!({"labels": [["x.png", [0, 1, 0, 0]], ["y.png", [0.5, 0.5, 0, 0]],
                            ["z.png", [0.9, 0.1, 0.0, 0.0]]]}),
    );
    let dest = tmp.path().join("out");
    let o = labelled(&src, &dest, file.to_str().unwrap());
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("class 2 (2) has no usable image"),
        "{}",
        text(&o.stderr)
    );
    write(
        json!({"labels": [["x.png", [0, 1, 0]], ["y.png", [0.5, 0.5, 0]], ["z.png", [0, 0, 1]]]}),
    );
    let o = labelled(&src, &dest, file.to_str().unwrap());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let set = ImageSet::open(&dest).unwrap();
    assert_eq!(
        (set.labels.clone(), set.classes()),
        (Some(vec![1, 0, 2]), 3)
    );
    // vectors of different lengths are refused, naming the entry
    write(json!({"labels": [["x.png", [0, 1]], ["y.png", [1, 0, 0]], ["z.png", [0, 0, 1]]]}));
    let o = labelled(&src, &tmp.path().join("out2"), file.to_str().unwrap());
    assert!(
        !o.status.success() && text(&o.stderr).contains("\"y.png\""),
        "{}",
        text(&o.stderr)
    );
    // an official prepared set whose dataset.json has vectors with an unused last class
    let official = tmp.path().join("official");
    for (i, c) in [[1u8, 2, 3], [4, 5, 6]].iter().enumerate() {
        png(&official.join(format!("00000/img{i:08}.png")), *c);
    }
    std::fs::write(
        official.join("dataset.json"),
        json!({"labels": [["00000/img00000000.png", [0.0, 1.0, 0.0, 0.0, 0.0]],
                          ["00000/img00000001.png", [1.0, 0.0, 0.0, 0.0, 0.0]]]})
        .to_string(),
    )
    .unwrap();
    let set = ImageSet::open(&official).unwrap();
    assert_eq!((set.labels.clone(), set.classes()), (Some(vec![1, 0]), 5));
}
