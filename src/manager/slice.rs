//! Slices of a managed list, with Python's semantics: `l[2:5]`, `l[::-1]`, `del l[1:3]`,
//! `l[1:2] = [...]` and the extended (stepped) forms, with Python's errors.

use super::exception::{Exception, ExceptionKind};
use super::referent::{MAX_ITEMS_PER_CALL, iterate};
use crate::object::{Object, Slice, SliceError};

/// Python's exception for a slice that cannot be applied.
pub(crate) fn exception(e: SliceError) -> Exception {
    match e {
        SliceError::NotAnInteger => Exception::type_error(e.to_string()),
        _ => Exception::msg(ExceptionKind::ValueError, e.to_string()),
    }
}

/// The positions `s` selects in `len` items, in order.
fn positions(s: &Slice, len: usize) -> Result<Vec<usize>, Exception> {
    s.positions(len).map_err(exception)
}

/// `l[s]`.
pub(crate) fn get(items: &[Object], s: &Slice) -> Result<Object, Exception> {
    let picked = positions(s, items.len())?;
    Ok(Object::List(
        picked.into_iter().map(|i| items[i].clone()).collect(),
    ))
}

/// `del l[s]`.
pub(crate) fn delete(items: &mut Vec<Object>, s: &Slice) -> Result<(), Exception> {
    let mut gone = vec![false; items.len()];
    for i in positions(s, items.len())? {
        gone[i] = true;
    }
    let mut at = 0;
    items.retain(|_| {
        at += 1;
        !gone[at - 1]
    });
    Ok(())
}

/// `l[s] = value`: a simple slice (step 1) takes any number of items in place of the ones it
/// names; an extended one takes exactly as many as it names.
pub(crate) fn set(items: &mut Vec<Object>, s: &Slice, value: Object) -> Result<(), Exception> {
    let (start, stop, step) = s.indices(items.len()).map_err(exception)?;
    let extended = step != 1;
    let new = iterate(value).map_err(|_| {
        Exception::type_error(if extended {
            "must assign iterable to extended slice"
        } else {
            "can only assign an iterable"
        })
    })?;
    if !extended {
        let start = start as usize;
        let stop = (stop as usize).max(start);
        if items.len() - (stop - start) + new.len() > MAX_ITEMS_PER_CALL {
            return Err(Exception::msg(
                ExceptionKind::MemoryError,
                format!("the result would exceed {MAX_ITEMS_PER_CALL} items"),
            ));
        }
        items.splice(start..stop, new);
        return Ok(());
    }
    let picked = positions(s, items.len())?;
    if picked.len() != new.len() {
        return Err(Exception::msg(
            ExceptionKind::ValueError,
            format!(
                "attempt to assign sequence of size {} to extended slice of size {}",
                new.len(),
                picked.len()
            ),
        ));
    }
    for (i, x) in picked.into_iter().zip(new) {
        items[i] = x;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    fn list(n: i64) -> Vec<Object> {
        (0..n).map(Object::from).collect()
    }

    #[test]
    fn reads_as_python_does() {
        let l = list(10);
        type Case = (Option<i64>, Option<i64>, Option<i64>, &'static str);
        let cases: &[Case] = &[
            (Some(2), Some(5), None, "[2, 3, 4]"),
            (None, None, Some(-1), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"),
            (Some(-3), None, None, "[7, 8, 9]"),
            (None, Some(-7), None, "[0, 1, 2]"),
            (Some(8), Some(2), Some(-2), "[8, 6, 4]"),
            (Some(100), Some(200), None, "[]"),
            (Some(-100), Some(2), None, "[0, 1]"),
            (None, None, Some(3), "[0, 3, 6, 9]"),
            (Some(5), Some(2), None, "[]"),
            (Some(-1), Some(-100), Some(-4), "[9, 5, 1]"),
        ];
        for &(a, b, c, want) in cases {
            let got = get(&l, &Slice::new(a, b, c)).unwrap();
            assert_eq!(got.to_string(), want, "{a:?}:{b:?}:{c:?}");
        }
        let e = get(&l, &Slice::new(None, None, 0)).unwrap_err();
        assert_eq!(e.kind(), ExceptionKind::ValueError);
        let e = get(&l, &Slice::of(obj!("a"), Object::None, Object::None)).unwrap_err();
        assert_eq!(e.kind(), ExceptionKind::TypeError);
    }

    #[test]
    fn writes_and_deletes_as_python_does() {
        let mut l = list(6);
        set(&mut l, &Slice::new(1, 3, None), obj!(["a", "b", "c"])).unwrap();
        assert_eq!(
            Object::List(l.clone()).to_string(),
            "[0, 'a', 'b', 'c', 3, 4, 5]"
        );
        set(&mut l, &Slice::new(5, 2, None), obj!([9])).unwrap();
        assert_eq!(
            Object::List(l.clone()).to_string(),
            "[0, 'a', 'b', 'c', 3, 9, 4, 5]"
        );
        delete(&mut l, &Slice::new(None, None, 2)).unwrap();
        assert_eq!(Object::List(l.clone()).to_string(), "['a', 'c', 9, 5]");
        set(&mut l, &Slice::new(None, None, -1), obj!([1, 2, 3, 4])).unwrap();
        assert_eq!(Object::List(l.clone()).to_string(), "[4, 3, 2, 1]");
        let e = set(&mut l, &Slice::new(None, None, 2), obj!([1])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "attempt to assign sequence of size 1 to extended slice of size 2"
        );
        let e = set(&mut l, &Slice::new(None, None, None), obj!(5)).unwrap_err();
        assert_eq!(e.to_string(), "can only assign an iterable");
        delete(&mut l, &Slice::new(1, 3, None)).unwrap();
        assert_eq!(Object::List(l).to_string(), "[4, 1]");
    }

    /// Many slices of many lengths, read, deleted and assigned here and in `python3`.
    #[test]
    fn agrees_with_python_on_many_slices() {
        use std::fmt::Write as _;
        use std::io::Write as _;
        let parts = [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(-1),
            Some(-3),
            Some(5),
            Some(-9),
            Some(40),
        ];
        let steps = [None, Some(1), Some(2), Some(-1), Some(-2), Some(3), Some(0)];
        let opt = |p: Option<i64>| p.map_or("None".to_owned(), |i| i.to_string());
        let mut input = String::new();
        let mut ours = String::new();
        let mut case = 0u64;
        for len in [0, 1, 5, 8] {
            for a in parts {
                for b in parts {
                    for c in steps {
                        case += 1;
                        let n = (case % 4) as i64;
                        writeln!(input, "{len} {} {} {} {n}", opt(a), opt(b), opt(c)).unwrap();
                        let s = Slice::new(a, b, c);
                        let show = |r: Result<Object, Exception>| match r {
                            Ok(v) => format!("ok {v}"),
                            Err(e) => format!("{} {e}", e.kind().python_name().1),
                        };
                        let l = list(len);
                        let got = show(get(&l, &s));
                        let mut d = list(len);
                        let del = show(delete(&mut d, &s).map(|()| Object::List(d.clone())));
                        let mut w = list(len);
                        let new = Object::List((0..n).map(|i| Object::from(100 + i)).collect());
                        let put = show(set(&mut w, &s, new).map(|()| Object::List(w.clone())));
                        writeln!(ours, "{got}|{del}|{put}").unwrap();
                    }
                }
            }
        }
        const PY: &str = r#"
import sys
def show(f):
    try:
        return 'ok ' + repr(f())
    except Exception as e:
        return type(e).__name__ + ' ' + str(e)
for line in sys.stdin:
    n, a, b, c, k = line.split()
    p = lambda x: None if x == 'None' else int(x)
    s = slice(p(a), p(b), p(c))
    n, k = int(n), int(k)
    def d():
        l = list(range(n)); del l[s]; return l
    def w():
        l = list(range(n)); l[s] = [100 + i for i in range(k)]; return l
    print(show(lambda: list(range(n))[s]) + '|' + show(d) + '|' + show(w))
"#;
        let mut py = std::process::Command::new("python3")
            .args(["-c", PY])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        py.stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(out.status.success());
        let theirs = String::from_utf8(out.stdout).unwrap();
        for ((i, o), t) in input.lines().zip(ours.lines()).zip(theirs.lines()) {
            assert_eq!(o, t, "{i}");
        }
        assert_eq!(ours.lines().count(), theirs.lines().count());
    }
}
