//! Proxmox property strings (`net[n]`, `rootfs`, `mp[n]`, `features`, `startup`): one parser
//! and one formatter for each shape, so no call site assembles them by hand.
//!
//! A property string is `key=value` pairs joined by `,`; one key may be written without its
//! name (the schema's `default_key`, e.g. the volume of `rootfs`). List values inside a pair
//! use `;` (`mount=nfs;cifs`). The schema keeps `,` `=` and `;` out of every value we send.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A property string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid property string {input:?}: {reason}")]
pub struct ParseError {
    input: String,
    reason: String,
}

fn err(input: &str, reason: impl Into<String>) -> ParseError {
    ParseError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Splits `s` into its pairs; a bare value is stored under `default_key`.
fn split(s: &str, default_key: Option<&str>) -> Result<BTreeMap<String, String>, ParseError> {
    let mut map = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match default_key {
                Some(k) => (k.to_string(), part.to_string()),
                None => return Err(err(s, format!("{part:?} has no key"))),
            },
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(err(s, format!("duplicate key {key:?}")));
        }
    }
    Ok(map)
}

fn parse_bool(s: &str, key: &str, v: &str) -> Result<bool, ParseError> {
    match v {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        _ => Err(err(s, format!("{key}={v:?} is not a boolean"))),
    }
}

fn parse_num<T: std::str::FromStr>(s: &str, key: &str, v: &str) -> Result<T, ParseError> {
    v.parse()
        .map_err(|_| err(s, format!("{key}={v:?} is not a number")))
}

/// Builds a property string; `None` values are left out, booleans are `0`/`1`.
#[derive(Default)]
struct Writer(String);

impl Writer {
    fn raw(&mut self, value: &str) -> &mut Self {
        self.sep();
        self.0.push_str(value);
        self
    }
    fn put(&mut self, key: &str, value: Option<impl std::fmt::Display>) -> &mut Self {
        if let Some(v) = value {
            self.sep();
            let _ = write!(self.0, "{key}={v}");
        }
        self
    }
    fn flag(&mut self, key: &str, value: Option<bool>) -> &mut Self {
        self.put(key, value.map(u8::from))
    }
    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
    }
}

/// `net[n]`: one network interface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Net {
    pub name: String,
    pub bridge: Option<String>,
    pub firewall: Option<bool>,
    pub gw: Option<String>,
    pub gw6: Option<String>,
    pub hwaddr: Option<String>,
    /// `dhcp`, `manual` or an IPv4 CIDR.
    pub ip: Option<String>,
    /// `auto`, `dhcp`, `manual` or an IPv6 CIDR.
    pub ip6: Option<String>,
    pub link_down: Option<bool>,
    pub mtu: Option<u32>,
    pub rate: Option<f64>,
    pub tag: Option<u16>,
    pub trunks: Option<String>,
    pub kind: Option<String>,
}

impl Net {
    /// Parses a `net[n]` value as Proxmox stores it.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut map = split(s, None)?;
        let mut take = |k: &str| map.remove(k);
        let net = Net {
            name: take("name").ok_or_else(|| err(s, "name is missing"))?,
            bridge: take("bridge"),
            firewall: take("firewall")
                .map(|v| parse_bool(s, "firewall", &v))
                .transpose()?,
            gw: take("gw"),
            gw6: take("gw6"),
            hwaddr: take("hwaddr"),
            ip: take("ip"),
            ip6: take("ip6"),
            link_down: take("link_down")
                .map(|v| parse_bool(s, "link_down", &v))
                .transpose()?,
            mtu: take("mtu").map(|v| parse_num(s, "mtu", &v)).transpose()?,
            rate: take("rate").map(|v| parse_num(s, "rate", &v)).transpose()?,
            tag: take("tag").map(|v| parse_num(s, "tag", &v)).transpose()?,
            trunks: take("trunks"),
            kind: take("type"),
        };
        map.remove("host-managed");
        match map.keys().next() {
            Some(k) => Err(err(s, format!("unknown key {k:?}"))),
            None => Ok(net),
        }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut w = Writer::default();
        w.put("name", Some(&self.name))
            .put("bridge", self.bridge.as_ref())
            .flag("firewall", self.firewall)
            .put("gw", self.gw.as_ref())
            .put("gw6", self.gw6.as_ref())
            .put("hwaddr", self.hwaddr.as_ref())
            .put("ip", self.ip.as_ref())
            .put("ip6", self.ip6.as_ref())
            .flag("link_down", self.link_down)
            .put("mtu", self.mtu)
            .put("rate", self.rate)
            .put("tag", self.tag)
            .put("trunks", self.trunks.as_ref())
            .put("type", self.kind.as_ref());
        f.write_str(&w.0)
    }
}

/// `rootfs` and `mp[n]`: a volume, with `mp` (the mount path) for mount points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volume {
    /// `STORAGE:SIZE_GiB` when asking for a new volume, `STORAGE:vm-100-disk-0` once allocated.
    pub volume: String,
    pub mp: Option<String>,
    pub size: Option<String>,
    pub acl: Option<bool>,
    pub backup: Option<bool>,
    pub mountoptions: Option<String>,
    pub quota: Option<bool>,
    pub replicate: Option<bool>,
    pub ro: Option<bool>,
    pub shared: Option<bool>,
}

impl Volume {
    /// Parses a `rootfs` or `mp[n]` value.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut map = split(s, Some("volume"))?;
        let mut take = |k: &str| map.remove(k);
        let bool_of = |k: &str, v: Option<String>| v.map(|v| parse_bool(s, k, &v)).transpose();
        let vol = Volume {
            volume: take("volume").ok_or_else(|| err(s, "volume is missing"))?,
            mp: take("mp"),
            size: take("size"),
            acl: bool_of("acl", take("acl"))?,
            backup: bool_of("backup", take("backup"))?,
            mountoptions: take("mountoptions"),
            quota: bool_of("quota", take("quota"))?,
            replicate: bool_of("replicate", take("replicate"))?,
            ro: bool_of("ro", take("ro"))?,
            shared: bool_of("shared", take("shared"))?,
        };
        map.remove("keepattrs");
        match map.keys().next() {
            Some(k) => Err(err(s, format!("unknown key {k:?}"))),
            None => Ok(vol),
        }
    }

    /// The size in GiB, from `size=8G` (also `512M`, `1T`), rounded up.
    pub fn size_gib(&self) -> Option<u64> {
        let size = self.size.as_deref()?;
        let (num, unit) = size.split_at(size.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(size.len()));
        let n: f64 = num.parse().ok()?;
        let gib = match unit {
            "K" => n / (1024.0 * 1024.0),
            "M" => n / 1024.0,
            "G" | "" => n,
            "T" => n * 1024.0,
            _ => return None,
        };
        Some(gib.ceil() as u64)
    }

    /// The storage part of the volume (`local-lvm` of `local-lvm:vm-100-disk-0`).
    pub fn storage(&self) -> &str {
        self.volume.split_once(':').map_or(&self.volume, |(s, _)| s)
    }
}

impl std::fmt::Display for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut w = Writer::default();
        w.raw(&self.volume)
            .put("mp", self.mp.as_ref())
            .flag("acl", self.acl)
            .flag("backup", self.backup)
            .put("mountoptions", self.mountoptions.as_ref())
            .flag("quota", self.quota)
            .flag("replicate", self.replicate)
            .flag("ro", self.ro)
            .flag("shared", self.shared)
            .put("size", self.size.as_ref());
        f.write_str(&w.0)
    }
}

/// `features`: container feature flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    pub force_rw_sys: Option<bool>,
    pub fuse: Option<bool>,
    pub keyctl: Option<bool>,
    pub mknod: Option<bool>,
    pub mount: Vec<String>,
    pub nesting: Option<bool>,
}

impl Features {
    /// Parses a `features` value.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut map = split(s, None)?;
        let mut flag = |k: &str| map.remove(k).map(|v| parse_bool(s, k, &v)).transpose();
        let features = Features {
            force_rw_sys: flag("force_rw_sys")?,
            fuse: flag("fuse")?,
            keyctl: flag("keyctl")?,
            mknod: flag("mknod")?,
            nesting: flag("nesting")?,
            mount: Vec::new(),
        };
        let mount = map
            .remove("mount")
            .map(|m| m.split(';').map(str::to_string).collect())
            .unwrap_or_default();
        match map.keys().next() {
            Some(k) => Err(err(s, format!("unknown key {k:?}"))),
            None => Ok(Features { mount, ..features }),
        }
    }

    /// Whether any flag other than `nesting` is set: Proxmox allows those to `root@pam` only.
    pub fn needs_root(&self) -> bool {
        [self.force_rw_sys, self.fuse, self.keyctl, self.mknod].contains(&Some(true))
            || !self.mount.is_empty()
    }
}

impl std::fmt::Display for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mount = (!self.mount.is_empty()).then(|| self.mount.join(";"));
        let mut w = Writer::default();
        w.flag("force_rw_sys", self.force_rw_sys)
            .flag("fuse", self.fuse)
            .flag("keyctl", self.keyctl)
            .flag("mknod", self.mknod)
            .put("mount", mount)
            .flag("nesting", self.nesting);
        f.write_str(&w.0)
    }
}

/// `startup`: boot order and delays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    pub order: Option<u32>,
    pub up: Option<u32>,
    pub down: Option<u32>,
}

impl Startup {
    /// Parses a `startup` value (`order` is the default key).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut map = split(s, Some("order"))?;
        let mut num = |k: &str| map.remove(k).map(|v| parse_num(s, k, &v)).transpose();
        let startup = Startup {
            order: num("order")?,
            up: num("up")?,
            down: num("down")?,
        };
        match map.keys().next() {
            Some(k) => Err(err(s, format!("unknown key {k:?}"))),
            None => Ok(startup),
        }
    }
}

impl std::fmt::Display for Startup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut w = Writer::default();
        w.put("order", self.order)
            .put("up", self.up)
            .put("down", self.down);
        f.write_str(&w.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_round_trips_every_field() {
        let net = Net {
            name: "eth0".into(),
            bridge: Some("vmbr0".into()),
            firewall: Some(true),
            gw: Some("192.168.1.1".into()),
            gw6: Some("fd00::1".into()),
            hwaddr: Some("BC:24:11:00:00:01".into()),
            ip: Some("192.168.1.10/24".into()),
            ip6: Some("fd00::10/64".into()),
            link_down: Some(false),
            mtu: Some(1500),
            rate: Some(12.5),
            tag: Some(20),
            trunks: Some("10;20".into()),
            kind: Some("veth".into()),
        };
        let text = net.to_string();
        assert_eq!(
            text,
            "name=eth0,bridge=vmbr0,firewall=1,gw=192.168.1.1,gw6=fd00::1,hwaddr=BC:24:11:00:00:01,\
             ip=192.168.1.10/24,ip6=fd00::10/64,link_down=0,mtu=1500,rate=12.5,tag=20,trunks=10;20,type=veth"
        );
        assert_eq!(Net::parse(&text).unwrap(), net);
    }

    #[test]
    fn net_parses_what_proxmox_stores_and_refuses_garbage() {
        let net = Net::parse("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2E:4F:01,ip=dhcp,type=veth").unwrap();
        assert_eq!(net.ip.as_deref(), Some("dhcp"));
        assert_eq!(Net::parse(&net.to_string()).unwrap(), net);
        assert!(Net::parse("bridge=vmbr0").is_err(), "name is required");
        assert!(
            Net::parse("name=eth0,bogus=1").is_err(),
            "unknown keys are refused"
        );
        assert!(Net::parse("name=eth0,mtu=big").is_err());
        assert!(Net::parse("name=eth0,name=eth1").is_err());
    }

    #[test]
    fn volumes_round_trip_and_report_their_size() {
        let rootfs = Volume::parse("local-lvm:vm-100-disk-0,size=8G").unwrap();
        assert_eq!(rootfs.storage(), "local-lvm");
        assert_eq!(rootfs.size_gib(), Some(8));
        assert_eq!(rootfs.to_string(), "local-lvm:vm-100-disk-0,size=8G");
        let mp = Volume {
            volume: "local-lvm:32".into(),
            mp: Some("/var/lib/postgresql".into()),
            backup: Some(true),
            ro: Some(false),
            acl: Some(true),
            quota: Some(false),
            replicate: Some(true),
            shared: Some(false),
            mountoptions: Some("noatime;nodev".into()),
            size: None,
        };
        assert_eq!(Volume::parse(&mp.to_string()).unwrap(), mp);
        assert_eq!(Volume::parse("volume=local:4").unwrap().volume, "local:4");
        assert_eq!(
            Volume::parse("local:vm-1-disk-0,size=512M").unwrap().size_gib(),
            Some(1)
        );
        assert_eq!(
            Volume::parse("local:vm-1-disk-0,size=1T").unwrap().size_gib(),
            Some(1024)
        );
        assert!(Volume::parse("size=8G").is_err(), "the volume is required");
    }

    #[test]
    fn features_round_trip_and_know_which_need_root() {
        let nesting = Features {
            nesting: Some(true),
            ..Default::default()
        };
        assert_eq!(nesting.to_string(), "nesting=1");
        assert!(!nesting.needs_root());
        let all = Features {
            force_rw_sys: Some(false),
            fuse: Some(true),
            keyctl: Some(true),
            mknod: Some(false),
            mount: vec!["nfs".into(), "cifs".into()],
            nesting: Some(true),
        };
        assert_eq!(
            all.to_string(),
            "force_rw_sys=0,fuse=1,keyctl=1,mknod=0,mount=nfs;cifs,nesting=1"
        );
        assert_eq!(Features::parse(&all.to_string()).unwrap(), all);
        assert!(all.needs_root());
        assert!(
            Features {
                mount: vec!["nfs".into()],
                ..Default::default()
            }
            .needs_root()
        );
        assert!(Features::parse("nesting=maybe").is_err());
    }

    #[test]
    fn startup_round_trips_with_its_default_key() {
        let s = Startup {
            order: Some(10),
            up: Some(5),
            down: Some(30),
        };
        assert_eq!(s.to_string(), "order=10,up=5,down=30");
        assert_eq!(Startup::parse(&s.to_string()).unwrap(), s);
        assert_eq!(
            Startup::parse("3,up=2").unwrap(),
            Startup {
                order: Some(3),
                up: Some(2),
                down: None
            }
        );
        assert_eq!(Startup::parse("").unwrap(), Startup::default());
    }
}
