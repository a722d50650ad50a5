//! Types of your own served by a manager: registered on every kind of server, called by
//! several processes through a typed proxy, with Python's exceptions for bad calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use multiproc::manager::{
    Call, Caller, Exception, ExceptionKind, Managed, Manager, ManagerError, Proxy, Server,
};
use multiproc::serde::{Deserialize, Serialize};
use multiproc::{Object, Process, obj};

multiproc::test_support!();

/// A counter that only goes up.
struct Counter(i64);

impl Managed for Counter {
    fn exposed(&self) -> &'static [&'static str] {
        &["add", "get", "spin", "explode"]
    }

    fn call(&mut self, call: Call) -> Result<Object, Exception> {
        match call.method.as_str() {
            "add" => {
                let (by,): (i64,) = call.args_as()?;
                if by < 0 {
                    return Err(Exception::msg(
                        ExceptionKind::ValueError,
                        "a counter only goes up",
                    ));
                }
                self.0 += by;
                Ok(self.0.into())
            }
            "get" => {
                call.arity(0, 0)?;
                Ok(self.0.into())
            }
            "spin" => {
                // Waits for another client's call to raise the flag: it can only come if
                // this call runs where it does not stop the server.
                let watchdog = Instant::now() + Duration::from_secs(20);
                while !FLAG.load(Ordering::SeqCst) {
                    if Instant::now() > watchdog {
                        return Err(Exception::msg(ExceptionKind::RuntimeError, "starved"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(Object::None)
            }
            "explode" => panic!("boom"),
            _ => Err(call.no_such_method()),
        }
    }

    fn value(&self) -> Object {
        self.0.into()
    }

    fn repr(&self) -> String {
        format!("Counter({})", self.0)
    }

    fn cost(&self, call: &Call) -> u64 {
        if call.method == "spin" { u64::MAX } else { 0 }
    }
}

static FLAG: AtomicBool = AtomicBool::new(false);

/// Raises [`FLAG`] when called.
struct Flag;

impl Managed for Flag {
    fn exposed(&self) -> &'static [&'static str] {
        &["raise"]
    }

    fn call(&mut self, call: Call) -> Result<Object, Exception> {
        call.arity(0, 0)?;
        FLAG.store(true, Ordering::SeqCst);
        Ok(Object::None)
    }

    fn value(&self) -> Object {
        FLAG.load(Ordering::SeqCst).into()
    }
}

fn new_counter(call: Call) -> Result<Box<dyn Managed>, Exception> {
    let (start,): (i64,) = call.args_as()?;
    assert!(start != 666, "an unlucky start");
    Ok(Box::new(Counter(start)))
}

fn new_flag(call: Call) -> Result<Box<dyn Managed>, Exception> {
    call.arity(0, 0)?;
    Ok(Box::new(Flag))
}

/// The typed proxy of a [`Counter`].
#[derive(Serialize, Deserialize)]
#[serde(crate = "multiproc::serde")]
struct CounterProxy(Proxy);

impl CounterProxy {
    fn add(&self, by: i64) -> Result<i64, ManagerError> {
        self.0.call_as("add", (by,))
    }

    fn get(&self) -> Result<i64, ManagerError> {
        self.0.call_as("get", ())
    }
}

fn count_up((c, n): (CounterProxy, u32)) -> i64 {
    let mut last = 0;
    for _ in 0..n {
        last = c.add(1).unwrap();
    }
    last
}

/// Held by one caller at a time, given back when its holder goes.
#[derive(Default)]
struct Claim(Option<Caller>);

impl Managed for Claim {
    fn exposed(&self) -> &'static [&'static str] {
        &["claim"]
    }

    fn call(&mut self, call: Call) -> Result<Object, Exception> {
        call.arity(0, 0)?;
        let free = self.0.is_none_or(|c| c == call.caller());
        if free {
            self.0 = Some(call.caller());
        }
        Ok(free.into())
    }

    fn value(&self) -> Object {
        self.0.is_some().into()
    }

    fn remembers(&self, caller: Caller) -> bool {
        self.0 == Some(caller)
    }

    fn client_gone(&mut self, caller: Caller) {
        if self.0 == Some(caller) {
            self.0 = None;
        }
    }
}

fn new_claim(call: Call) -> Result<Box<dyn Managed>, Exception> {
    call.arity(0, 0)?;
    Ok(Box::<Claim>::default())
}

fn managers() -> Vec<Manager> {
    let options = {
        let mut o = Manager::options();
        o.register("Counter", new_counter)
            .register("Flag", new_flag)
            .register("Claim", new_claim);
        o
    };
    vec![options.start().unwrap(), options.start_thread().unwrap()]
}

#[test]
fn several_processes_count_exactly_through_a_typed_proxy() {
    for manager in managers() {
        let c = CounterProxy(manager.create("Counter", vec![obj!(5)]).unwrap());
        let workers: Vec<_> = (0..4)
            .map(|_| Process::start(count_up, (CounterProxy(c.0.clone()), 250)).unwrap())
            .collect();
        for w in workers {
            let last = w.join().unwrap();
            assert!((6..=1005).contains(&last), "{last}");
        }
        assert_eq!(c.get().unwrap(), 1005);
        assert_eq!(c.0.typeid(), "Counter");
        assert_eq!(c.0.to_string(), "Counter(1005)");
        assert_eq!(c.0.get_value().unwrap(), obj!(1005));
        assert_eq!(manager.number_of_objects().unwrap(), 1);
        drop(c);
        assert_eq!(
            manager.number_of_objects().unwrap(),
            0,
            "freed with its proxy"
        );
    }
}

fn raised(r: Result<impl std::fmt::Debug, ManagerError>) -> Exception {
    match r {
        Err(ManagerError::Raised(e)) => e,
        other => panic!("not an exception: {other:?}"),
    }
}

#[test]
fn bad_calls_come_back_as_exceptions() {
    for manager in managers() {
        let c = CounterProxy(manager.create("Counter", vec![obj!(0)]).unwrap());
        let e = raised(c.0.call("reset", vec![]));
        assert_eq!(e.kind(), ExceptionKind::AttributeError);
        let e = raised(c.0.call("add", vec![obj!("one")]));
        assert_eq!(e.kind(), ExceptionKind::TypeError);
        assert!(e.to_string().starts_with("add: "), "{e}");
        let e = raised(c.0.call("add", vec![obj!(1), obj!(2)]));
        assert_eq!(e.kind(), ExceptionKind::TypeError);
        let e = raised(c.0.call("get", vec![obj!(1)]));
        assert_eq!(e.to_string(), "get expected exactly 0 arguments, got 1");
        let e = raised(c.add(-1));
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (ExceptionKind::ValueError, "a counter only goes up")
        );
        let e = raised(manager.create("Counter", vec![obj!(666)]));
        assert_eq!(e.to_string(), "Counter.__init__ panicked: an unlucky start");
        // The constructor checks its arguments too.
        let e = raised(manager.create("Counter", vec![]));
        assert_eq!(e.kind(), ExceptionKind::TypeError);
        let e = raised(manager.create("Unknown", vec![]));
        assert_eq!(e.kind(), ExceptionKind::TypeError);
        // A result of the wrong type is the caller's codec error, not the server's.
        let wrong: Result<String, _> = c.0.call_as("get", ());
        assert!(matches!(wrong, Err(ManagerError::Codec(_))), "{wrong:?}");
        // A method that panics raises in its caller.
        let e = raised(c.0.call("explode", vec![]));
        assert_eq!(e.kind(), ExceptionKind::RuntimeError);
        assert_eq!(e.to_string(), "Counter.explode panicked: boom");
        // And the object and the server go on.
        assert_eq!(c.add(2).unwrap(), 2);
        let calls = vec![
            (&c.0, "add", vec![obj!(3)]),
            (&c.0, "nope", vec![]),
            (&c.0, "get", vec![]),
        ];
        let results = manager.pipeline(calls).unwrap();
        assert_eq!(results[0], Ok(obj!(5)));
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            ExceptionKind::AttributeError
        );
        assert_eq!(results[2], Ok(obj!(5)));
    }
}

#[test]
fn registrations_are_checked_before_starting() {
    let taken = Manager::options()
        .register("dict", new_counter)
        .start_thread();
    assert!(matches!(taken, Err(ManagerError::Start(_))), "{taken:?}");
    let twice = Manager::options()
        .register("Counter", new_counter)
        .register("Counter", new_flag)
        .start();
    assert!(matches!(twice, Err(ManagerError::Start(_))), "{twice:?}");
}

#[test]
fn a_costly_call_of_a_custom_type_stops_no_other_client() {
    // In this process, so that the objects share the flag.
    let manager = Manager::options()
        .register("Counter", new_counter)
        .register("Flag", new_flag)
        .start_thread()
        .unwrap();
    let c = manager.create("Counter", vec![obj!(0)]).unwrap();
    let flag = manager.create("Flag", vec![]).unwrap();
    let spinning = std::thread::spawn(move || c.call("spin", vec![]));
    // Served while the spin runs on a worker; the spin ends once the flag is up.
    flag.call("raise", vec![]).unwrap();
    assert_eq!(spinning.join().unwrap().unwrap(), Object::None);
}

fn remote_count((address, n): (String, u32)) -> i64 {
    let manager = Manager::connect(address.parse::<multiproc::Address>().unwrap(), b"k").unwrap();
    let c = CounterProxy(manager.get("hits").unwrap());
    let mut last = 0;
    for _ in 0..n {
        last = c.add(1).unwrap();
    }
    last
}

#[test]
fn a_server_of_your_own_serves_and_publishes_custom_types() {
    let server = Server::bind(
        "127.0.0.1:0".parse::<multiproc::Address>().unwrap(),
        Some(b"k"),
    )
    .unwrap();
    server.register("Counter", new_counter).unwrap();
    assert!(server.register("Counter", new_counter).is_err());
    assert!(server.register("Queue", new_counter).is_err());
    server.publish("hits", "Counter", vec![obj!(0)]).unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());
    let clients: Vec<_> = (0..3)
        .map(|_| Process::start(remote_count, (address.to_string(), 100)).unwrap())
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let manager = Manager::connect(address, b"k").unwrap();
    let hits = CounterProxy(manager.get("hits").unwrap());
    assert_eq!(hits.get().unwrap(), 300);
    let own = CounterProxy(manager.create("Counter", vec![obj!(7)]).unwrap());
    assert_eq!(own.add(1).unwrap(), 8);
    drop((hits, own, manager));
    stopper.stop();
    serving.join().unwrap().unwrap();
}

/// A `multiproc serve` process, killed if the test fails before it stops it.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn multiproc_serve_bounds_what_its_clients_store() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("multiproc-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key"), b"k").unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_multiproc"))
        .args(["serve", "--object", "state=dict", "--max-memory", "1000000"])
        .arg("--authkey-file")
        .arg(dir.join("key"))
        .arg("--listen")
        .arg(format!("unix:{}", dir.join("sock").display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Serving(child);
    let mut line = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let manager = Manager::connect(dir.join("sock").as_path(), b"k").unwrap();
    let state = manager.get("state").unwrap();
    let big = Object::Bytes(vec![0; 600_000]);
    state
        .call("__setitem__", vec![obj!("a"), big.clone()])
        .unwrap();
    let e = raised(state.call("__setitem__", vec![obj!("b"), big.clone()]));
    assert_eq!(e.kind(), ExceptionKind::MemoryError);
    // Nothing changed; room comes back when a value goes.
    assert_eq!(state.call("__len__", vec![]).unwrap(), obj!(1));
    state.call("__delitem__", vec![obj!("a")]).unwrap();
    state.call("__setitem__", vec![obj!("b"), big]).unwrap();
    drop((state, manager));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.0.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(server.0.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn claim_and_hang((claim, said): (Proxy, Proxy)) {
    let got = claim.call("claim", vec![]).unwrap();
    said.call("put", vec![got]).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn what_a_killed_client_held_in_a_custom_type_is_given_back() {
    for manager in managers() {
        let claim = manager.create("Claim", vec![]).unwrap();
        let said = manager.create("Queue", vec![]).unwrap();
        let child = Process::start(claim_and_hang, (claim.clone(), said.clone())).unwrap();
        assert_eq!(said.call("get", vec![]).unwrap(), obj!(true));
        assert_eq!(claim.call("claim", vec![]).unwrap(), obj!(false), "held");
        child.kill().unwrap();
        let _ = child.join();
        let watchdog = Instant::now() + Duration::from_secs(10);
        while claim.call("claim", vec![]).unwrap() != obj!(true) {
            assert!(Instant::now() < watchdog, "never given back");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
