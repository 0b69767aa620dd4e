//! The user and group databases (NSS), asked before the first fork.
//!
//! A dynamically linked process asks the C library (`getpwnam_r`, `getpwuid_r`, `getgrnam_r`,
//! `getgrouplist`), which reads `/etc/nsswitch.conf` and loads a module for each source it
//! names. A statically linked glibc (how `daemonic` itself is built on glibc Linux: it starts
//! about 100 us sooner without the dynamic loader) cannot load those modules safely: a lookup
//! that reached Debian's default second source, `systemd`, crashed the process (verified). So a
//! static glibc build never asks its C library for them (musl, which loads no module, is
//! asked as usual). It reads `/etc/passwd` and `/etc/group` itself where
//! `nsswitch.conf` asks `files` first (an entry found there is the answer, as the C library's
//! default action on success is to return), and asks `getent(1)`, glibc's own dynamically
//! linked client of the same databases, for the rest: a name not in the files, and the group
//! list where another source may add groups (glibc merges every source's for it). That costs a
//! process (about a millisecond here), only on a start that names a user or group, and only
//! where other sources are configured.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// A passwd entry's fields the daemon needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passwd {
    pub name: CString,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub home: CString,
}

/// What `nsswitch.conf` asks of a database, as far as a static build needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sources {
    /// `files` comes first, and an entry found there ends the lookup.
    files_first: bool,
    /// `files` is the only source.
    files_only: bool,
}

impl Sources {
    /// What a static process can reach without the file: the C library's default, which it
    /// can only follow into `files`.
    const FILES: Sources = Sources {
        files_first: true,
        files_only: true,
    };
    /// A line that could not be read: ask `getent`, which reads it itself.
    const UNKNOWN: Sources = Sources {
        files_first: false,
        files_only: false,
    };
}

/// Where `getent` is looked for: glibc installs it in `/usr/bin` (`/bin` before the merge).
/// Fixed system paths, not `PATH`: the launcher may run as root.
const GETENT: [&str; 2] = ["/usr/bin/getent", "/bin/getent"];

/// Whether this build asks the C library: anything but a static glibc (musl, static or not,
/// reads the files itself and loads no module; a dynamic glibc loads them safely).
const LIBC: bool = !cfg!(all(target_feature = "crt-static", target_env = "gnu"));

/// The user named `name`. Through `getent`, an all-digit name not in the files is not found
/// (getent looks such a key up as a uid, and an entry of another name is no answer; names
/// that are all digits are refused by `useradd` and rare elsewhere).
pub(crate) fn user(name: &CStr) -> io::Result<Option<Passwd>> {
    if LIBC {
        return passwd_with_buffer(|pwd, buf, len, result| {
            // SAFETY: every pointer refers to live storage of the stated size; getpwnam_r writes
            // only into them.
            unsafe { libc::getpwnam_r(name.as_ptr(), pwd, buf, len, result) }
        });
    }
    let key = name.to_bytes();
    files_then_getent(
        &["passwd"],
        PASSWD_FILE,
        |lines| find_passwd(lines, |f| f[0] == key),
        // Only the entry of that name: getent reads a numeric key as a uid.
        || getent_passwd(key, |pw| pw.name.as_bytes() == key),
    )
}

/// The user whose uid is `uid`.
pub(crate) fn user_by_id(uid: libc::uid_t) -> io::Result<Option<Passwd>> {
    if LIBC {
        return passwd_with_buffer(|pwd, buf, len, result| {
            // SAFETY: as in `user`.
            unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) }
        });
    }
    files_then_getent(
        &["passwd"],
        PASSWD_FILE,
        |lines| find_passwd(lines, |f| number(f[2]) == Some(uid)),
        || getent_passwd(uid.to_string().as_bytes(), |pw| pw.uid == uid),
    )
}

/// The gid of the group named `name`.
pub(crate) fn group(name: &CStr) -> io::Result<Option<libc::gid_t>> {
    if LIBC {
        return group_libc(name);
    }
    let key = name.to_bytes();
    files_then_getent(
        &["group"],
        GROUP_FILE,
        |lines| find_group(lines, key),
        || {
            let Some(line) = getent("group", key)? else {
                return Ok(None);
            };
            let (named, gid) = parse_group(&line)?;
            Ok((named == key).then_some(gid))
        },
    )
}

/// The supplementary groups `user` gets, with `gid` first, as `initgroups(3)` would install
/// them.
pub(crate) fn group_list(user: &CStr, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    if LIBC {
        return group_list_libc(user, gid);
    }
    // glibc reads an `initgroups` line when there is one, else the `group` line; from the
    // latter it merges every source's groups, so only `files` alone is answered here.
    if sources(&["initgroups", "group"]).files_only {
        let groups = member_of(&files_lines(GROUP_FILE)?, user.to_bytes());
        return Ok(with_first(gid, groups));
    }
    let line = getent("initgroups", user.to_bytes())?.unwrap_or_default();
    Ok(with_first(gid, parse_initgroups(&line, user.to_bytes())?))
}

/// A static build's order: the files, where `nsswitch.conf` asks them first (an entry found
/// there is the answer, and with `files` alone so is none), then `getent`. An unreadable file
/// is no answer, and the next source is asked, as glibc's `files` source does.
fn files_then_getent<T>(
    databases: &[&str],
    path: &str,
    in_files: impl FnOnce(&[Vec<u8>]) -> Option<T>,
    from_getent: impl FnOnce() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let sources = sources(databases);
    if sources.files_first {
        match files_lines(path) {
            Ok(lines) => {
                let found = in_files(&lines);
                if found.is_some() || sources.files_only {
                    return Ok(found);
                }
            }
            Err(e) if sources.files_only => return Err(e),
            Err(_) => {}
        }
    }
    from_getent()
}

/// `getent passwd KEY`'s entry, if `wanted`.
fn getent_passwd(key: &[u8], wanted: impl Fn(&Passwd) -> bool) -> io::Result<Option<Passwd>> {
    let Some(line) = getent("passwd", key)? else {
        return Ok(None);
    };
    Ok(Some(parse_passwd(&line)?).filter(|pw| wanted(pw)))
}

const PASSWD_FILE: &str = "/etc/passwd";
const GROUP_FILE: &str = "/etc/group";

/// The first well-formed passwd line whose fields `matches`, as glibc's `files` source reads
/// them (a line it cannot parse is skipped).
fn find_passwd(lines: &[Vec<u8>], matches: impl Fn(&[&[u8]]) -> bool) -> Option<Passwd> {
    lines
        .iter()
        .filter(|line| {
            let f = fields(line);
            f.len() >= 4 && matches(&f)
        })
        .find_map(|line| parse_passwd(line).ok())
}

/// The gid of the first well-formed group line named `name`.
fn find_group(lines: &[Vec<u8>], name: &[u8]) -> Option<libc::gid_t> {
    lines
        .iter()
        .map(|line| fields(line))
        .filter(|f| f.len() >= 3 && f[0] == name)
        .find_map(|f| number(f[2]))
}

/// The gids of the well-formed group lines that list `user` as a member.
fn member_of(lines: &[Vec<u8>], user: &[u8]) -> Vec<libc::gid_t> {
    lines
        .iter()
        .map(|line| fields(line))
        .filter(|f| {
            f.get(3).is_some_and(|m| {
                m.split(|&b| b == b',')
                    .any(|m| m.trim_ascii_start() == user)
            })
        })
        .filter_map(|f| number(f[2]))
        .collect()
}

/// The entry lines of a `files` database: blank lines, comments (`#`) and NIS compat entries
/// (`+`, `-`: only the `compat` source reads them) left out, leading blanks dropped, as glibc's
/// `files` source skips them.
fn files_lines(path: &str) -> io::Result<Vec<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(text) => Ok(entry_lines(&text)),
        // No file: no entry, as for the C library.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
    }
}

fn entry_lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii_start)
        .filter(|line| !line.is_empty() && !matches!(line[0], b'#' | b'+' | b'-'))
        .map(<[u8]>::to_vec)
        .collect()
}

fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b':').collect()
}

/// What `/etc/nsswitch.conf` asks of the first of `databases` it has a line for.
fn sources(databases: &[&str]) -> Sources {
    match std::fs::read("/etc/nsswitch.conf") {
        Ok(conf) => databases
            .iter()
            .find_map(|db| parse_sources(&conf, db))
            .unwrap_or(Sources::FILES),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Sources::FILES,
        Err(_) => Sources::UNKNOWN,
    }
}

/// `db`'s line in an `nsswitch.conf` (the last one, as glibc reads them), or `None` when it has
/// none. An action right after `files` that acts on success (`[SUCCESS=continue]`,
/// `[SUCCESS=merge]`) means an entry found there may not be the whole answer.
fn parse_sources(conf: &[u8], db: &str) -> Option<Sources> {
    // From the end: the last line for `db` is the one that counts.
    conf.rsplit(|&b| b == b'\n').find_map(|line| {
        let line = line
            .split(|&b| b == b'#')
            .next()
            .unwrap_or_default()
            .trim_ascii_start();
        // The name, then blanks and a colon, which glibc does not insist on.
        let end = line
            .iter()
            .position(|&b| b == b':' || b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let (key, rest) = line.split_at(end);
        if key != db.as_bytes() {
            return None;
        }
        let rest = rest.trim_ascii_start();
        let rest = rest.strip_prefix(b":").unwrap_or(rest);
        // Sources and bracketed actions (whose spaces are allowed: "[ NOTFOUND = return ]").
        let mut items: Vec<Vec<u8>> = Vec::new();
        let mut in_action = false;
        for word in rest
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
        {
            match items.last_mut() {
                Some(action) if in_action => action.extend_from_slice(word),
                _ => items.push(word.to_vec()),
            }
            if word.starts_with(b"[") {
                in_action = true;
            }
            if in_action && word.ends_with(b"]") {
                in_action = false;
            }
        }
        let is_action = |item: &Vec<u8>| item.starts_with(b"[");
        let names: Vec<&Vec<u8>> = items.iter().filter(|i| !is_action(i)).collect();
        let first_is_files = names.first().is_some_and(|n| n.as_slice() == b"files");
        let acts_on_success = items.get(1).is_some_and(|next| {
            is_action(next)
                && next
                    .to_ascii_uppercase()
                    .windows(8)
                    .any(|w| w == b"SUCCESS=")
        });
        Some(Sources {
            files_first: first_is_files && !acts_on_success,
            files_only: first_is_files && names.len() == 1,
        })
    })
}

/// Runs `getent DATABASE KEY`; its line, or `None` when the key is not found (exit status 2).
fn getent(database: &str, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let path = GETENT
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "a static build of daemonic asks getent(1) for the {database} database \
                     beyond /etc/passwd and /etc/group (as /etc/nsswitch.conf names other \
                     sources, or could not be read), and neither {} nor {} exists (install \
                     glibc's getent: Debian's libc-bin)",
                    GETENT[0], GETENT[1]
                ),
            )
        })?;
    // `--`: a key that begins with `-` is a key, not an option.
    let output = crate::signals::with_children_waitable(|| {
        std::process::Command::new(path)
            .args([
                OsStr::new(database),
                OsStr::new("--"),
                OsStr::from_bytes(key),
            ])
            .stdin(std::process::Stdio::null())
            .output()
    })
    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    match output.status.code() {
        Some(0) => Ok(Some(output.stdout)),
        Some(2) => Ok(None),
        _ => {
            let said = String::from_utf8_lossy(first_line(&output.stderr)).into_owned();
            Err(io::Error::other(format!(
                "{path} {database}: {}{}{said} (the {database} database could not be read)",
                output.status,
                if said.is_empty() { "" } else { ": " },
            )))
        }
    }
}

/// A passwd line: `name:password:uid:gid:gecos:home:shell` (the fields after the gid may be
/// missing, as glibc's `files` source allows).
fn parse_passwd(line: &[u8]) -> io::Result<Passwd> {
    let line = first_line(line);
    let fields = fields(line);
    let bad = || invalid("passwd", line);
    let [name, _, uid, gid, ..] = fields[..] else {
        return Err(bad());
    };
    let home = fields.get(5).copied().unwrap_or_default();
    Ok(Passwd {
        name: CString::new(name).map_err(|_| bad())?,
        uid: number(uid).ok_or_else(bad)?,
        gid: number(gid).ok_or_else(bad)?,
        home: CString::new(home).map_err(|_| bad())?,
    })
}

/// A `getent group` line: `name:password:gid:members`; its name and gid.
fn parse_group(line: &[u8]) -> io::Result<(&[u8], libc::gid_t)> {
    let line = first_line(line);
    let fields = fields(line);
    match fields[..] {
        [name, _, gid, ..] => Ok((name, number(gid).ok_or_else(|| invalid("group", line))?)),
        _ => Err(invalid("group", line)),
    }
}

/// A `getent initgroups USER` line: `USER` (padded), then the gid of each group it belongs to.
/// A name may hold a blank (directory services allow it): the key is taken off as given.
fn parse_initgroups(line: &[u8], user: &[u8]) -> io::Result<Vec<libc::gid_t>> {
    let line = first_line(line);
    if line.is_empty() {
        return Ok(Vec::new());
    }
    let gids = line
        .strip_prefix(user)
        .ok_or_else(|| invalid("initgroups", line))?;
    gids.split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .map(|w| number(w).ok_or_else(|| invalid("initgroups", line)))
        .collect()
}

/// `gid`, then `groups` without it and without repeats, as `getgrouplist` orders them.
fn with_first(gid: libc::gid_t, groups: Vec<libc::gid_t>) -> Vec<libc::gid_t> {
    let mut list = vec![gid];
    for g in groups {
        if !list.contains(&g) {
            list.push(g);
        }
    }
    list
}

fn first_line(text: &[u8]) -> &[u8] {
    text.split(|&b| b == b'\n').next().unwrap_or_default()
}

/// A uid or gid field: decimal, after any blanks (as `strtoul` reads it).
fn number(field: &[u8]) -> Option<u32> {
    std::str::from_utf8(field.trim_ascii_start())
        .ok()?
        .parse()
        .ok()
}

fn invalid(database: &str, line: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "getent {database} answered {:?}, not an entry",
            String::from_utf8_lossy(line)
        ),
    )
}

/// Runs a `getpw*_r` call with a growing buffer.
fn passwd_with_buffer(
    call: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int,
) -> io::Result<Option<Passwd>> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: passwd is plain data; zeroed is a valid initial value that the call overwrites.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned();
        let home = if pwd.pw_dir.is_null() {
            CString::default()
        } else {
            // SAFETY: a non-null pw_dir points to a NUL-terminated string inside `buf`.
            unsafe { CStr::from_ptr(pwd.pw_dir) }.to_owned()
        };
        return Ok(Some(Passwd {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        }));
    }
}

fn group_libc(name: &CStr) -> io::Result<Option<libc::gid_t>> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: group is plain data; zeroed is a valid initial value that the call overwrites.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer refers to live storage of the stated size.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

fn group_list_libc(user: &CStr, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    let mut count: libc::c_int = 64;
    loop {
        let mut list = vec![0 as libc::gid_t; count as usize];
        let asked = count;
        // SAFETY: `list` has room for `count` entries, and getgrouplist updates `count`.
        let rc = unsafe { libc::getgrouplist(user.as_ptr(), gid, list.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            list.truncate(count as usize);
            return Ok(list);
        }
        if count <= asked {
            count = asked * 2;
        }
        if count > 65536 {
            return Err(io::Error::other("more than 65536 groups"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(files_first: bool, files_only: bool) -> Option<Sources> {
        Some(Sources {
            files_first,
            files_only,
        })
    }

    #[test]
    fn a_line_naming_files_alone_is_files_only() {
        let conf = b"# comment\npasswd:         files\ngroup: files [NOTFOUND=return]\n";
        assert_eq!(parse_sources(conf, "passwd"), plan(true, true));
        assert_eq!(parse_sources(conf, "group"), plan(true, true));
        assert_eq!(parse_sources(conf, "initgroups"), None);
        // glibc takes a line without its colon, and the last line for a database.
        assert_eq!(parse_sources(b"passwd files\n", "passwd"), plan(true, true));
        let twice = b"passwd: files\ngroup: files\npasswd: files systemd\n";
        assert_eq!(parse_sources(twice, "passwd"), plan(true, false));
        assert_eq!(parse_sources(b"passwdx: files\n", "passwd"), None);
    }

    #[test]
    fn other_sources_after_files_leave_files_first() {
        let conf = b"passwd: files systemd\ngroup: files [ SUCCESS = merge ] systemd\n\
                     initgroups: files [NOTFOUND=return] ldap # x\nshadow: compat\n\
                     gshadow: sss files\n";
        assert_eq!(parse_sources(conf, "passwd"), plan(true, false));
        // An entry found in the files is not the whole answer when success goes on.
        assert_eq!(parse_sources(conf, "group"), plan(false, false));
        assert_eq!(parse_sources(conf, "initgroups"), plan(true, false));
        assert_eq!(parse_sources(conf, "shadow"), plan(false, false));
        assert_eq!(parse_sources(conf, "gshadow"), plan(false, false));
        // A line with no source at all: not answered here.
        assert_eq!(parse_sources(b"passwd:\n", "passwd"), plan(false, false));
        // A commented-out line is no line.
        assert_eq!(parse_sources(b"#passwd: files\n", "passwd"), None);
    }

    #[test]
    fn the_files_are_read_as_glibc_reads_them() {
        let passwd = entry_lines(
            b"# root:x:9:9::/:/bin/sh\n\n  root:x:0:0:root:/root:/bin/bash\n\
              bad:x:notanumber:1::/:/bin/sh\nbad:x:7:7::/home/bad:/bin/sh\n\
              short:x:8:8\nshorter:x:9\nfirst:x:1000:1000::/home/first:\nsecond:x:1000:1001::/s:\n\
              +::0:0:::\n-evil:x:0:0:::\n+plus:x:0:0:::\n",
        );
        let root = find_passwd(&passwd, |f| f[0] == b"root").unwrap();
        assert_eq!((root.uid, root.home.as_bytes()), (0, &b"/root"[..]));
        // A line that does not parse is skipped, not the end of the search.
        assert_eq!(find_passwd(&passwd, |f| f[0] == b"bad").unwrap().uid, 7);
        let short = find_passwd(&passwd, |f| f[0] == b"short").unwrap();
        assert_eq!((short.uid, short.home.as_bytes()), (8, &b""[..]));
        assert_eq!(find_passwd(&passwd, |f| f[0] == b"shorter"), None);
        // By uid: the first line with it.
        let first = find_passwd(&passwd, |f| number(f[2]) == Some(1000)).unwrap();
        assert_eq!(first.name.as_bytes(), b"first");
        // NIS compat entries are the `compat` source's, never the files'.
        for name in [&b"+"[..], b"", b"-evil", b"+plus"] {
            assert_eq!(find_passwd(&passwd, |f| f[0] == name), None);
        }
        let group = entry_lines(
            b"#adm:x:99:\nadm:x:4:syslog, alice\nstaff:x:50\nusers:x:100:bob,alice\n\
              broken:x:x:alice\ntrail:x:5:alice \ncr:x:6:alice\r\n+:x:0:alice\n",
        );
        assert_eq!(find_group(&group, b"adm"), Some(4));
        assert_eq!(find_group(&group, b"staff"), Some(50));
        assert_eq!(find_group(&group, b"nobody-here"), None);
        assert_eq!(find_group(&group, b"+"), None);
        // Blanks before a member are skipped; after it (or a carriage return) they are part
        // of the name, which then is not alice.
        assert_eq!(member_of(&group, b"alice"), vec![4, 100]);
        assert_eq!(member_of(&group, b"ali"), Vec::<u32>::new());
    }

    #[test]
    fn getent_lines_are_parsed() {
        let pw = parse_passwd(b"www-data:x:33:34:www-data:/var/www:/usr/sbin/nologin\n").unwrap();
        assert_eq!(pw.name.as_bytes(), b"www-data");
        assert_eq!((pw.uid, pw.gid), (33, 34));
        assert_eq!(pw.home.as_bytes(), b"/var/www");
        assert_eq!(
            parse_group(b"adm:x:4:syslog,alice\n").unwrap(),
            (&b"adm"[..], 4)
        );
        let line = b"alice                 4 27 1000\n";
        assert_eq!(parse_initgroups(line, b"alice").unwrap(), vec![4, 27, 1000]);
        assert!(
            parse_initgroups(b"root                 \n", b"root")
                .unwrap()
                .is_empty()
        );
        // The user's name is taken off as given, blanks and all: never read as a gid.
        let spaced = b"svc 0                 1001\n";
        assert_eq!(parse_initgroups(spaced, b"svc 0").unwrap(), vec![1001]);
        assert!(parse_initgroups(b"bob                   4\n", b"alice").is_err());
        assert!(parse_initgroups(b"alice 4 x\n", b"alice").is_err());
        assert_eq!(with_first(1000, vec![4, 1000, 27, 4]), vec![1000, 4, 27]);
    }

    #[test]
    fn malformed_getent_lines_are_errors_naming_the_line() {
        let err = parse_passwd(b"alice:x:notanumber:1:::\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("alice:x:notanumber"), "{err}");
        assert!(parse_passwd(b"shorter:x:1\n").is_err());
        assert!(parse_passwd(b"big:x:4294967296:0:::\n").is_err());
        assert!(parse_group(b"g:x\n").is_err());
    }

    /// Through getent itself (glibc's, so on glibc systems): root's entries as /etc/passwd and
    /// /etc/group have them, and nothing for a name nobody has.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn getent_answers_as_the_files_do() {
        let _forking = crate::forks_excluded();
        let root = getent_passwd(b"root", |pw| pw.name.as_bytes() == b"root")
            .unwrap()
            .unwrap();
        assert_eq!(
            (root.uid, root.gid, root.name.as_bytes()),
            (0, 0, &b"root"[..])
        );
        assert_eq!(getent("passwd", b"no-such-user-nss-x").unwrap(), None);
        let line = getent("group", b"root").unwrap().unwrap();
        assert_eq!(parse_group(&line).unwrap(), (&b"root"[..], 0));
        // root's groups as getent gives them are those the group file lists it in (no
        // directory service on these machines adds to root's).
        let line = getent("initgroups", b"root").unwrap().unwrap();
        let mut theirs = parse_initgroups(&line, b"root").unwrap();
        let mut ours = member_of(&files_lines(GROUP_FILE).unwrap(), b"root");
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(theirs, ours);
    }

    /// A key is a key: one that getent could read as an option or as another number never
    /// yields an entry, and an answer for another name than the one asked is no answer.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn keys_that_getent_could_misread_find_nothing() {
        let _forking = crate::forks_excluded();
        for key in [
            &b"-sfiles"[..],
            b"--help",
            b"-",
            b"4294967296",
            b" 4294967296",
        ] {
            assert_eq!(
                getent_passwd(key, |pw| pw.name.as_bytes() == key).unwrap(),
                None
            );
            let asked = CString::new(key).unwrap();
            assert_eq!(user(&asked).unwrap(), None, "{key:?}");
            assert_eq!(group(&asked).unwrap(), None, "{key:?}");
        }
        // A uid's entry when asked by uid, not when asked by that number as a name.
        assert_eq!(user_by_id(0).unwrap().unwrap().name.as_bytes(), b"root");
        assert_eq!(
            getent_passwd(b"0", |pw| pw.name.as_bytes() == b"0").unwrap(),
            None
        );
    }

    /// What the files answer here is what getent answers (it asks them first too).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_files_agree_with_getent_on_this_system() {
        let _forking = crate::forks_excluded();
        let passwd = files_lines(PASSWD_FILE).unwrap();
        assert!(!passwd.is_empty());
        for line in passwd.iter().take(20) {
            let name = fields(line)[0];
            let Some(ours) = find_passwd(&passwd, |f| f[0] == name) else {
                continue;
            };
            let theirs = getent_passwd(name, |pw| pw.name.as_bytes() == name).unwrap();
            assert_eq!(Some(ours), theirs);
        }
        let group = files_lines(GROUP_FILE).unwrap();
        for line in group.iter().take(20) {
            let name = fields(line)[0];
            let Some(ours) = find_group(&group, name) else {
                continue;
            };
            let line = getent("group", name).unwrap().unwrap();
            assert_eq!(parse_group(&line).unwrap(), (name, ours));
        }
    }

    /// Started with SIGCHLD ignored (the kernel then reaps children itself), getent is still
    /// waited for.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn getent_runs_when_sigchld_is_ignored() {
        let _forking = crate::forks_excluded();
        // SAFETY: sets and restores a disposition; SIG_IGN runs no handler. The other tests
        // that make children hold the same lock.
        let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let found = getent("passwd", b"root");
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGCHLD, old) };
        assert!(found.unwrap().is_some());
    }
}
