#include "loader/xdp_dataplane.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "xgw_dp.skel.h"

namespace xgw::loader {

// The C++ side of the ABI: sizes and offsets the BPF side relies on.
static_assert(sizeof(xgw_spd4_key) == 16);
static_assert(sizeof(xgw_us_cfg) == 8);
static_assert(sizeof(xgw_spd6_key) == 40);
static_assert(sizeof(xgw_spd_val) == 32);
static_assert(offsetof(xgw_spd_val, lenmask) == 8);
static_assert(sizeof(xgw_flow4) == 24);
static_assert(sizeof(xgw_flow6) == 48);
static_assert(offsetof(xgw_flow6, src) == 16);
static_assert(sizeof(xgw_gw_cfg) == 24);
static_assert(offsetof(xgw_gw_cfg, tier_bps) == 8);
static_assert(sizeof(xgw_tier_state) == 24);
static_assert(sizeof(xgw_conn) == 24);
static_assert(offsetof(xgw_conn, tunnel) == 12);
static_assert(sizeof(xgw_tunnel) == 24);
static_assert(offsetof(xgw_tunnel, last_acquire_ns) == 16);
static_assert(sizeof(xgw_sa_key) == 4 && sizeof(xgw_sa_val) == 8);
static_assert(sizeof(xgw_traffic) == 32);
static_assert(sizeof(xgw_gw_stats) == 32 + 8 * (size_t{XGW_DROP__MAX} + size_t{XGW_PASS__MAX}));
static_assert(sizeof(xgw_event) == 56);
static_assert(sizeof(xgw_ifcfg) == 16);

namespace {

constexpr std::string_view kDropNames[] = {
#define XGW_X_NAME(name, label) label,
    XGW_DROP_REASONS(XGW_X_NAME)
#undef XGW_X_NAME
};
constexpr std::string_view kPassNames[] = {
#define XGW_X_NAME(name, label) label,
    XGW_PASS_REASONS(XGW_X_NAME)
#undef XGW_X_NAME
};
static_assert(std::size(kDropNames) == XGW_DROP__MAX);
static_assert(std::size(kPassNames) == XGW_PASS__MAX);

SysError sys(std::string what, int err) {
  return SysError{std::move(what), err < 0 ? -err : err};
}

// libbpf returns -errno (or sets errno with a negative result).
int err_of(int rc) {
  return rc < 0 ? (errno != 0 && rc == -1 ? errno : -rc) : 0;
}

std::string ns_link(const char* path) {
  char buf[64] = {};
  const ssize_t n = ::readlink(path, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The inode of this thread's network namespace: ifindexes are only
// meaningful inside it.
uint64_t netns_ino() {
  struct stat st {};
  return ::stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

Result<void> ensure_bpffs(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root = "/sys/fs/bpf";
  struct statfs st {};
  if (::statfs(root.c_str(), &st) != 0 || st.f_type != BPF_FS_MAGIC) {
    // A bpffs mounted inside a private mount namespace (ip netns exec
    // remounts /sys) dies with it, and a restart would not find its pins.
    const std::string self = ns_link("/proc/self/ns/mnt"), init = ns_link("/proc/1/ns/mnt");
    if (!self.empty() && !init.empty() && self != init) {
      return unexpected(
          sys("/sys/fs/bpf is not bpffs in this private mount namespace; pins made "
              "here would vanish (enter only the network namespace, e.g. nsenter --net)",
              EXDEV));
    }
    std::error_code ec;
    fs::create_directories(root, ec);
    if (::mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0)
      return unexpected(sys("mount bpffs on /sys/fs/bpf", errno));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return unexpected(sys("create " + dir, ec.value()));
  return {};
}

int possible_cpus() {
  const int n = libbpf_num_possible_cpus();
  return n > 0 ? n : 1;
}

// CPUs that carry traffic: what per-CPU tier shares divide by.
int online_cpus() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

Result<std::string> prog_name(uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return unexpected(sys("open program " + std::to_string(id), errno));
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  const int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  ::close(fd);
  if (rc != 0) return unexpected(sys("query program " + std::to_string(id), errno));
  return std::string(info.name);
}

bool is_xgw_prog(const std::string& name) {
  return name == "xgw_lan" || name == "xgw_wan";
}

// Which xgw program (if any) runs on the interface, and in which mode.
struct Attached {
  uint32_t prog_id = 0;
  uint32_t mode_flag = 0;  // XDP_FLAGS_DRV_MODE / XDP_FLAGS_SKB_MODE
  std::string name;
};

Result<Attached> query(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof(q);
  if (int rc = bpf_xdp_query(ifindex, 0, &q); rc != 0)
    return unexpected(sys("query XDP on ifindex " + std::to_string(ifindex), err_of(rc)));
  Attached a;
  if (q.drv_prog_id)
    a = {q.drv_prog_id, XDP_FLAGS_DRV_MODE, ""};
  else if (q.skb_prog_id)
    a = {q.skb_prog_id, XDP_FLAGS_SKB_MODE, ""};
  else if (q.hw_prog_id)
    a = {q.hw_prog_id, XDP_FLAGS_HW_MODE, ""};
  if (a.prog_id) {
    auto n = prog_name(a.prog_id);
    if (!n) return unexpected(n.error());
    a.name = *n;
  }
  return a;
}

Result<void> detach_if_xgw(int ifindex) {
  auto a = query(ifindex);
  if (!a) return unexpected(a.error());
  if (!a->prog_id || !is_xgw_prog(a->name)) return {};
  const int fd = bpf_prog_get_fd_by_id(a->prog_id);
  bpf_xdp_attach_opts o{};
  o.sz = sizeof(o);
  o.old_prog_fd = fd;
  const int rc = bpf_xdp_detach(ifindex, a->mode_flag | XDP_FLAGS_REPLACE, &o);
  if (fd >= 0) ::close(fd);
  if (rc != 0)
    return unexpected(sys("detach XDP from ifindex " + std::to_string(ifindex), err_of(rc)));
  return {};
}

}  // namespace

std::string_view drop_reason_name(size_t r) {
  return r < XGW_DROP__MAX ? kDropNames[r] : "?";
}
std::string_view pass_reason_name(size_t r) {
  return r < XGW_PASS__MAX ? kPassNames[r] : "?";
}

uint64_t default_burst_bytes(uint64_t tier_bps) {
  const uint64_t b = tier_bps / 8 / 20;  // 50 ms
  return b < 65536 ? 65536 : b;
}

struct XdpDataplane::Impl {
  xgw_dp* skel = nullptr;
  std::string pin_dir;
  std::vector<std::pair<bpf_map*, std::string>> pin_after_load;
  int ncpus = 1;
  ring_buffer* rb = nullptr;
  const std::function<void(const AcquireEvent&)>* sink = nullptr;
  size_t delivered = 0;

  ~Impl() {
    if (rb) ring_buffer__free(rb);
    if (skel) xgw_dp__destroy(skel);
  }
  int fd(bpf_map* m) const { return bpf_map__fd(m); }

  // Sums the first `n` u64 fields of a per-CPU value over all CPUs.
  Result<std::vector<uint64_t>> percpu_sum(bpf_map* m, uint32_t key, size_t n) const {
    const size_t stride = (bpf_map__value_size(m) + 7) / 8 * 8;  // the kernel's per-CPU step
    if (n * 8 > stride) return unexpected(sys("read past a per-CPU value", EINVAL));
    std::vector<uint64_t> buf(stride / 8 * ncpus);
    if (bpf_map_lookup_elem(fd(m), &key, buf.data()) != 0)
      return unexpected(sys(std::string("read ") + bpf_map__name(m), errno));
    std::vector<uint64_t> sum(n);
    for (int c = 0; c < ncpus; ++c)
      for (size_t i = 0; i < n; ++i) sum[i] += buf[c * (stride / 8) + i];
    return sum;
  }

  Result<void> percpu_zero(bpf_map* m, uint32_t key) {
    std::vector<uint8_t> zero(static_cast<size_t>((bpf_map__value_size(m) + 7) / 8 * 8) * ncpus);
    if (bpf_map_update_elem(fd(m), &key, zero.data(), BPF_ANY) != 0)
      return unexpected(sys(std::string("reset ") + bpf_map__name(m), errno));
    return {};
  }

  static int on_event(void* ctx, void* data, size_t len) {
    auto* self = static_cast<Impl*>(ctx);
    if (len < sizeof(xgw_event)) return 0;
    xgw_event e;
    std::memcpy(&e, data, sizeof e);
    if (e.type != XGW_EV_ACQUIRE) return 0;
    AcquireEvent a{e.gw_idx, e.conn_idx, e.tunnel_idx, {}, {}};
    a.src.family = a.dst.family = e.family == 6 ? net::Family::V6 : net::Family::V4;
    std::memcpy(a.src.bytes.data(), e.src, 16);
    std::memcpy(a.dst.bytes.data(), e.dst, 16);
    if (e.family == 4) {
      std::memset(a.src.bytes.data() + 4, 0, 12);
      std::memset(a.dst.bytes.data() + 4, 0, 12);
    }
    ++self->delivered;
    if (self->sink) (*self->sink)(a);
    return 0;
  }
};

XdpDataplane::XdpDataplane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
XdpDataplane::XdpDataplane(XdpDataplane&&) noexcept = default;
XdpDataplane& XdpDataplane::operator=(XdpDataplane&&) noexcept = default;
XdpDataplane::~XdpDataplane() = default;

Result<XdpDataplane> XdpDataplane::open(const LoadOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->pin_dir = opts.pin_dir;
  impl->ncpus = possible_cpus();
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  impl->skel = xgw_dp__open();
  if (!impl->skel) return unexpected(sys("open BPF object xgw_dp", errno));
  auto* s = impl->skel;
  s->rodata->tier_percpu = opts.tier_percpu ? 1 : 0;
  s->rodata->ncpus = static_cast<uint32_t>(online_cpus());
  s->rodata->flow_cache = opts.flow_cache ? 1 : 0;
  if (!opts.pin_dir.empty()) {
    if (auto r = ensure_bpffs(opts.pin_dir); !r) return unexpected(r.error());
    // Pinned maps found here are reused by libbpf (an xgwd restart keeps
    // its tables and counters); missing ones are created and pinned.
    bpf_map* m;
    bpf_object__for_each_map(m, s->obj) {
      if (bpf_map__is_internal(m)) continue;
      const std::string path = opts.pin_dir + "/" + bpf_map__name(m);
      if (bpf_map__type(m) == BPF_MAP_TYPE_DEVMAP) {
        // The kernel adds BPF_F_RDONLY_PROG to every devmap and rejects it
        // at creation, so libbpf's pin-reuse check (flags must equal the
        // declaration's) always fails: reuse by hand, pin after load.
        const int fd = bpf_obj_get(path.c_str());
        if (fd >= 0) {
          const int rc = bpf_map__reuse_fd(m, fd);
          ::close(fd);  // reuse_fd keeps its own duplicate
          if (rc != 0) return unexpected(sys("reuse pinned " + path, err_of(rc)));
        } else {
          impl->pin_after_load.emplace_back(m, path);
        }
        continue;
      }
      if (int rc = bpf_map__set_pin_path(m, path.c_str()); rc != 0)
        return unexpected(sys("set pin path " + path, err_of(rc)));
    }
  }
  if (int rc = xgw_dp__load(s); rc != 0) {
    return unexpected(
        sys("load BPF object xgw_dp (pinned maps from an incompatible version? "
            "run xgwd --detach-all)",
            err_of(rc)));
  }
  for (const auto& [m, path] : impl->pin_after_load)
    if (int rc = bpf_map__pin(m, path.c_str()); rc != 0)
      return unexpected(sys("pin " + path, err_of(rc)));
  return XdpDataplane(std::move(impl));
}

Result<void> XdpDataplane::set_interface(int ifindex, uint32_t gw_idx, IfRole role) {
  if (gw_idx >= XGW_MAX_GATEWAYS) return unexpected(sys("gateway index out of range", ERANGE));
  if (ifindex <= 0 || ifindex >= XGW_MAX_IFINDEX)
    return unexpected(
        sys("ifindex " + std::to_string(ifindex) + " out of the data plane's range", ERANGE));
  const uint32_t key = static_cast<uint32_t>(ifindex);
  xgw_ifcfg v{gw_idx, static_cast<uint32_t>(role), netns_ino()};
  if (bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_ifcfg), &key, &v, BPF_ANY) != 0)
    return unexpected(sys("record interface " + std::to_string(ifindex), errno));
  return {};
}

Result<AttachMode> XdpDataplane::attach(int ifindex, uint32_t gw_idx, IfRole role,
                                        bool allow_generic) {
  auto mode = attach_program(ifindex, gw_idx, role, allow_generic);
  if (!mode || impl_->pin_dir.empty()) return mode;
  // Pin what runs, so `bpftool prog show pinned` shows the live program.
  bpf_program* p = role == IfRole::Lan ? impl_->skel->progs.xgw_lan : impl_->skel->progs.xgw_wan;
  const std::string path = impl_->pin_dir + "/" + bpf_program__name(p);
  ::unlink(path.c_str());  // an earlier instance's program
  if (int rc = bpf_program__pin(p, path.c_str()); rc != 0)
    return unexpected(sys("pin " + path, err_of(rc)));
  return mode;
}

Result<AttachMode> XdpDataplane::attach_program(int ifindex, uint32_t gw_idx, IfRole role,
                                                bool allow_generic) {
  if (auto r = set_interface(ifindex, gw_idx, role); !r) return unexpected(r.error());
  const int prog = role == IfRole::Lan ? lan_prog_fd() : wan_prog_fd();
  auto cur = query(ifindex);
  if (!cur) return unexpected(cur.error());
  if (cur->prog_id) {
    if (!is_xgw_prog(cur->name)) {
      return unexpected(sys(
          "ifindex " + std::to_string(ifindex) + " runs another XDP program (" + cur->name + ")",
          EBUSY));
    }
    // Restart or re-attach: swap the program atomically, same mode.
    const int old = bpf_prog_get_fd_by_id(cur->prog_id);
    bpf_xdp_attach_opts o{};
    o.sz = sizeof(o);
    o.old_prog_fd = old;
    const int rc = bpf_xdp_attach(ifindex, prog, cur->mode_flag | XDP_FLAGS_REPLACE, &o);
    if (old >= 0) ::close(old);
    if (rc != 0)
      return unexpected(
          sys("replace XDP program on ifindex " + std::to_string(ifindex), err_of(rc)));
    return cur->mode_flag == XDP_FLAGS_SKB_MODE ? AttachMode::Generic : AttachMode::Native;
  }
  int rc = bpf_xdp_attach(ifindex, prog, XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
  if (rc == 0) return AttachMode::Native;
  const int native_err = err_of(rc);
  if (!allow_generic)
    return unexpected(sys("attach XDP (native) to ifindex " + std::to_string(ifindex), native_err));
  rc = bpf_xdp_attach(ifindex, prog, XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
  if (rc != 0)
    return unexpected(
        sys("attach XDP (generic) to ifindex " + std::to_string(ifindex), err_of(rc)));
  return AttachMode::Generic;
}

Result<void> XdpDataplane::detach(int ifindex) {
  if (auto r = detach_if_xgw(ifindex); !r) return r;
  if (ifindex <= 0 || ifindex >= XGW_MAX_IFINDEX) return {};
  const uint32_t key = static_cast<uint32_t>(ifindex);
  xgw_ifcfg none{};
  if (bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_ifcfg), &key, &none, BPF_ANY) != 0)
    return unexpected(sys("forget interface " + std::to_string(ifindex), errno));
  return {};
}

Result<void> XdpDataplane::detach_all(const std::string& pin_dir) {
  namespace fs = std::filesystem;
  const std::string ifcfg = pin_dir + "/xgw_ifcfg";
  const int fd = bpf_obj_get(ifcfg.c_str());
  if (fd >= 0) {
    std::vector<uint32_t> ifs;
    const uint64_t here = netns_ino();
    std::string elsewhere;
    for (uint32_t i = 1; i < XGW_MAX_IFINDEX; ++i) {
      xgw_ifcfg v{};
      if (bpf_map_lookup_elem(fd, &i, &v) != 0 || v.role == 0) continue;
      if (v.netns_ino != here)
        elsewhere += " " + std::to_string(i);
      else
        ifs.push_back(i);
    }
    ::close(fd);
    // Interfaces of another network namespace cannot be reached from here;
    // removing the pins now would orphan their programs.
    if (!elsewhere.empty()) {
      return unexpected(sys(
          "ifindex" + elsewhere + " belong to another network namespace; run --detach-all there",
          EXDEV));
    }
    for (uint32_t ifindex : ifs) {
      // An interface that no longer exists has nothing to detach.
      if (auto r = detach_if_xgw(static_cast<int>(ifindex)); !r && r.error().err != ENODEV)
        return r;
    }
  } else if (errno != ENOENT) {
    return unexpected(sys("open " + ifcfg, errno));
  }
  std::error_code ec;
  fs::remove_all(pin_dir, ec);
  if (ec) return unexpected(sys("remove " + pin_dir, ec.value()));
  return {};
}

Result<void> XdpDataplane::set_gateway(uint32_t gw_idx, const GatewayConfig& c) {
  if (gw_idx >= XGW_MAX_GATEWAYS) return unexpected(sys("gateway index out of range", ERANGE));
  // Keeps the bucket's nano-byte arithmetic inside 64 bits.
  if (c.tier_bps > 100'000'000'000ull || c.burst_bytes > (1ull << 30))
    return unexpected(sys("tier above 100 Gbit/s or burst above 1 GiB", ERANGE));
  const int fd = impl_->fd(impl_->skel->maps.xgw_gw);
  xgw_gw_cfg cfg{};
  bpf_map_lookup_elem(fd, &gw_idx, &cfg);  // keep spd_gen
  cfg.flags = XGW_GW_F_ACTIVE | (c.drop_unmatched ? XGW_GW_F_DROP_UNMATCHED : 0) |
              (c.drop_no_sa ? XGW_GW_F_DROP_NO_SA : 0);
  cfg.tier_bps = c.tier_bps;
  cfg.burst_bytes =
      c.tier_bps == 0 ? 0 : (c.burst_bytes ? c.burst_bytes : default_burst_bytes(c.tier_bps));
  if (bpf_map_update_elem(fd, &gw_idx, &cfg, BPF_ANY) != 0)
    return unexpected(sys("set gateway " + std::to_string(gw_idx), errno));
  return {};
}

Result<void> XdpDataplane::remove_gateway(uint32_t gw_idx) {
  if (gw_idx >= XGW_MAX_GATEWAYS) return unexpected(sys("gateway index out of range", ERANGE));
  const int fd = impl_->fd(impl_->skel->maps.xgw_gw);
  xgw_gw_cfg cfg{};
  bpf_map_lookup_elem(fd, &gw_idx, &cfg);
  cfg.flags = 0;
  cfg.spd_gen++;
  if (bpf_map_update_elem(fd, &gw_idx, &cfg, BPF_ANY) != 0)
    return unexpected(sys("remove gateway " + std::to_string(gw_idx), errno));
  for (bpf_map* outer : {impl_->skel->maps.xgw_spd4, impl_->skel->maps.xgw_spd6})
    bpf_map_delete_elem(impl_->fd(outer), &gw_idx);
  return {};
}

namespace {

// Builds one family's trie for a gateway; returns its fd (caller closes).
template <typename Key>
Result<int> build_trie(bpf_object* obj, const char* key_type, uint32_t gw_idx,
                       std::span<const SpdRelation* const> rels, int addr_bytes) {
  const btf* b = bpf_object__btf(obj);
  LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
  if (b) {
    const int k = btf__find_by_name_kind(b, key_type, BTF_KIND_STRUCT);
    const int v = btf__find_by_name_kind(b, "xgw_spd_val", BTF_KIND_STRUCT);
    if (k > 0 && v > 0) {
      o.btf_fd = static_cast<uint32_t>(btf__fd(b));
      o.btf_key_type_id = static_cast<uint32_t>(k);
      o.btf_value_type_id = static_cast<uint32_t>(v);
    }
  }
  const std::string name =
      std::string(addr_bytes == 4 ? "xgw_spd4_" : "xgw_spd6_") + std::to_string(gw_idx);
  const int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, name.c_str(), sizeof(Key),
                                sizeof(xgw_spd_val), XGW_MAX_RELATIONS, &o);
  if (fd < 0) return unexpected(sys("create SPD trie", errno));
  xgw_spd_val meta{};
  for (const SpdRelation* r : rels) {
    Key k{};
    k.prefixlen = 32 + static_cast<uint32_t>(addr_bytes) * 8 + r->remote.len;
    k.srclen = htonl(r->local.len);
    std::memcpy(&k.src, r->local.addr.bytes.data(), addr_bytes);
    std::memcpy(&k.dst, r->remote.addr.bytes.data(), addr_bytes);
    xgw_spd_val v{};
    v.conn_idx = r->conn_idx;
    if (bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST) != 0) {
      const int e = errno;
      ::close(fd);
      return unexpected(sys("SPD relation " + r->local.str() + " -> " + r->remote.str() +
                                (e == EEXIST ? " is listed twice" : ""),
                            e));
    }
    meta.lenmask[r->local.len / 64] |= 1ull << (r->local.len % 64);
  }
  Key mk{};
  mk.prefixlen = 32;
  mk.srclen = XGW_SPD_META;
  if (bpf_map_update_elem(fd, &mk, &meta, BPF_ANY) != 0) {
    const int e = errno;
    ::close(fd);
    return unexpected(sys("SPD length index", e));
  }
  return fd;
}

}  // namespace

Result<uint32_t> XdpDataplane::replace_spd(uint32_t gw_idx,
                                           std::span<const SpdRelation> relations) {
  if (gw_idx >= XGW_MAX_GATEWAYS) return unexpected(sys("gateway index out of range", ERANGE));
  std::vector<const SpdRelation*> v4, v6;
  for (const auto& r : relations) {
    if (r.local.family() != r.remote.family())
      return unexpected(sys("SPD relation mixes IPv4 and IPv6", EINVAL));
    (r.local.family() == net::Family::V4 ? v4 : v6).push_back(&r);
  }
  if (v4.size() >= XGW_MAX_RELATIONS || v6.size() >= XGW_MAX_RELATIONS)
    return unexpected(sys("SPD has more relations than the data plane holds", E2BIG));
  // Build both tables completely before either is visible.
  auto t4 = build_trie<xgw_spd4_key>(impl_->skel->obj, "xgw_spd4_key", gw_idx, v4, 4);
  if (!t4) return unexpected(t4.error());
  auto t6 = build_trie<xgw_spd6_key>(impl_->skel->obj, "xgw_spd6_key", gw_idx, v6, 16);
  if (!t6) {
    ::close(*t4);
    return unexpected(t6.error());
  }
  // Each swap is one pointer store in the outer array; a packet reads one
  // trie of its own family, so it sees the old table or the new, whole.
  const int r4 = bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_spd4), &gw_idx, &*t4, BPF_ANY);
  const int e4 = errno;
  const int r6 =
      r4 == 0 ? bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_spd6), &gw_idx, &*t6, BPF_ANY)
              : 0;
  const int e6 = errno;
  ::close(*t4);
  ::close(*t6);
  if (r4 != 0) return unexpected(sys("install IPv4 SPD", e4));
  // Then retire flow-cache entries of the old tables, even when only the
  // IPv4 swap took: cached results must not outlive their table.
  const int fd = impl_->fd(impl_->skel->maps.xgw_gw);
  xgw_gw_cfg cfg{};
  bpf_map_lookup_elem(fd, &gw_idx, &cfg);
  cfg.spd_gen++;
  const int rg = bpf_map_update_elem(fd, &gw_idx, &cfg, BPF_ANY);
  const int eg = errno;
  if (r6 != 0) return unexpected(sys("install IPv6 SPD", e6));
  if (rg != 0) return unexpected(sys("bump SPD generation", eg));
  return cfg.spd_gen;
}

Result<void> XdpDataplane::set_connection(uint32_t conn_idx, const ConnectionEntry& c) {
  if (conn_idx >= XGW_MAX_CONNS || c.ntunnels < 1 || c.ntunnels > 2 || c.active >= c.ntunnels)
    return unexpected(sys("connection " + std::to_string(conn_idx) + " out of range", ERANGE));
  xgw_conn v{c.gw_idx, XGW_CONN_F_VALID, c.active, {c.tunnels[0], c.tunnels[1]}, c.ntunnels};
  if (bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_conn), &conn_idx, &v, BPF_ANY) != 0)
    return unexpected(sys("set connection " + std::to_string(conn_idx), errno));
  return {};
}

Result<void> XdpDataplane::remove_connection(uint32_t conn_idx) {
  if (conn_idx >= XGW_MAX_CONNS) return unexpected(sys("connection index out of range", ERANGE));
  xgw_conn v{};
  if (bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_conn), &conn_idx, &v, BPF_ANY) != 0)
    return unexpected(sys("remove connection " + std::to_string(conn_idx), errno));
  return {};
}

Result<void> XdpDataplane::set_active_tunnel(uint32_t conn_idx, uint32_t active) {
  if (conn_idx >= XGW_MAX_CONNS) return unexpected(sys("connection index out of range", ERANGE));
  const int fd = impl_->fd(impl_->skel->maps.xgw_conn);
  xgw_conn v{};
  if (bpf_map_lookup_elem(fd, &conn_idx, &v) != 0) return unexpected(sys("read connection", errno));
  if (!(v.flags & XGW_CONN_F_VALID) || active >= v.ntunnels)
    return unexpected(
        sys("connection " + std::to_string(conn_idx) + " has no tunnel " + std::to_string(active),
            ENOENT));
  v.active = active;
  if (bpf_map_update_elem(fd, &conn_idx, &v, BPF_ANY) != 0)
    return unexpected(sys("flip active tunnel", errno));
  return {};
}

Result<void> XdpDataplane::set_userspace_tun(uint32_t gw_idx, uint32_t ifindex, uint32_t mtu) {
  if (gw_idx >= XGW_MAX_GATEWAYS) return unexpected(sys("gateway index out of range", ERANGE));
  const int dev = impl_->fd(impl_->skel->maps.xgw_us_tun);
  const int cfg = impl_->fd(impl_->skel->maps.xgw_us_cfg);
  xgw_us_cfg c{};
  if (ifindex == 0) {
    // Turn the redirect off first, then drop the device.
    if (bpf_map_update_elem(cfg, &gw_idx, &c, BPF_ANY) != 0)
      return unexpected(sys("clear userspace TUN config", errno));
    if (bpf_map_delete_elem(dev, &gw_idx) != 0 && errno != ENOENT)
      return unexpected(sys("remove userspace TUN device", errno));
    return {};
  }
  if (mtu < 68) return unexpected(sys("TUN MTU below 68", EINVAL));
  if (bpf_map_update_elem(dev, &gw_idx, &ifindex, BPF_ANY) != 0)
    return unexpected(sys("set userspace TUN device " + std::to_string(ifindex), errno));
  c.mtu = mtu;
  if (bpf_map_update_elem(cfg, &gw_idx, &c, BPF_ANY) != 0)
    return unexpected(sys("set userspace TUN config", errno));
  return {};
}

Result<void> XdpDataplane::set_tunnel(uint32_t tunnel_idx, const TunnelEntry& t) {
  if (tunnel_idx >= XGW_MAX_TUNNELS) return unexpected(sys("tunnel index out of range", ERANGE));
  const int fd = impl_->fd(impl_->skel->maps.xgw_tun);
  xgw_tunnel v{};
  bpf_map_lookup_elem(fd, &tunnel_idx, &v);  // keep last_acquire_ns
  v.conn_idx = t.conn_idx;
  v.backend = static_cast<uint32_t>(t.backend);
  v.flags = t.sa_ready ? XGW_TUN_F_SA_READY : 0;
  v.out_spi = t.out_spi;
  if (bpf_map_update_elem(fd, &tunnel_idx, &v, BPF_ANY) != 0)
    return unexpected(sys("set tunnel " + std::to_string(tunnel_idx), errno));
  return {};
}

Result<void> XdpDataplane::add_sa(uint32_t spi, uint32_t tunnel_idx, uint32_t gw_idx) {
  if (spi == 0) return unexpected(sys("SPI 0 is reserved (RFC 4303 §2.1)", EINVAL));
  xgw_sa_key k{htonl(spi)};
  xgw_sa_val v{tunnel_idx, gw_idx};
  if (bpf_map_update_elem(impl_->fd(impl_->skel->maps.xgw_sa), &k, &v, BPF_ANY) != 0)
    return unexpected(sys("add SA", errno));
  return {};
}

Result<void> XdpDataplane::remove_sa(uint32_t spi) {
  xgw_sa_key k{htonl(spi)};
  if (bpf_map_delete_elem(impl_->fd(impl_->skel->maps.xgw_sa), &k) != 0 && errno != ENOENT)
    return unexpected(sys("remove SA", errno));
  return {};
}

Result<size_t> XdpDataplane::clear_sas() {
  const int fd = impl_->fd(impl_->skel->maps.xgw_sa);
  std::vector<xgw_sa_key> keys;
  xgw_sa_key k{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    k = next;
    prev = &k;
  }
  for (const auto& key : keys)
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT)
      return unexpected(sys("clear SAs", errno));
  return keys.size();
}

Result<void> XdpDataplane::reset_gateway_counters(uint32_t gw_idx) {
  return impl_->percpu_zero(impl_->skel->maps.xgw_gw_stats, gw_idx);
}

Result<void> XdpDataplane::reset_tunnel_counters(uint32_t tunnel_idx) {
  return impl_->percpu_zero(impl_->skel->maps.xgw_tun_cnt, tunnel_idx);
}

Result<Traffic> XdpDataplane::gateway_traffic(uint32_t gw_idx) const {
  auto s = impl_->percpu_sum(impl_->skel->maps.xgw_gw_stats, gw_idx, 4);
  if (!s) return unexpected(s.error());
  return Traffic{(*s)[0], (*s)[1], (*s)[2], (*s)[3]};
}

Result<Traffic> XdpDataplane::tunnel_traffic(uint32_t tunnel_idx) const {
  auto s = impl_->percpu_sum(impl_->skel->maps.xgw_tun_cnt, tunnel_idx, 4);
  if (!s) return unexpected(s.error());
  return Traffic{(*s)[0], (*s)[1], (*s)[2], (*s)[3]};
}

Result<Reasons> XdpDataplane::reasons(uint32_t gw_idx) const {
  auto s = impl_->percpu_sum(impl_->skel->maps.xgw_gw_stats, gw_idx,
                             4 + size_t{XGW_DROP__MAX} + size_t{XGW_PASS__MAX});
  if (!s) return unexpected(s.error());
  Reasons r;
  for (size_t i = 0; i < XGW_DROP__MAX; ++i) r.drop[i] = (*s)[4 + i];
  for (size_t i = 0; i < XGW_PASS__MAX; ++i) r.pass[i] = (*s)[4 + XGW_DROP__MAX + i];
  return r;
}

Result<size_t> XdpDataplane::sa_count() const {
  const int fd = impl_->fd(impl_->skel->maps.xgw_sa);
  xgw_sa_key k{}, next{};
  size_t n = 0;
  const xgw_sa_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    k = next;
    prev = &k;
  }
  return n;
}

bool XdpDataplane::xgw_attached(int ifindex) {
  auto a = query(ifindex);
  return a && a->prog_id && is_xgw_prog(a->name);
}

Result<size_t> XdpDataplane::poll_events(int timeout_ms,
                                         const std::function<void(const AcquireEvent&)>& f) {
  if (!impl_->rb) {
    impl_->rb = ring_buffer__new(impl_->fd(impl_->skel->maps.xgw_events), &Impl::on_event,
                                 impl_.get(), nullptr);
    if (!impl_->rb) return unexpected(sys("open event ring buffer", errno));
  }
  impl_->sink = &f;
  impl_->delivered = 0;
  const int rc = ring_buffer__poll(impl_->rb, timeout_ms);
  impl_->sink = nullptr;
  if (rc < 0 && rc != -EINTR) return unexpected(sys("poll events", -rc));
  return impl_->delivered;
}

int XdpDataplane::lan_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.xgw_lan);
}
int XdpDataplane::wan_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.xgw_wan);
}
int XdpDataplane::map_fd(std::string_view name) const {
  bpf_map* m = bpf_object__find_map_by_name(impl_->skel->obj, std::string(name).c_str());
  return m ? bpf_map__fd(m) : -1;
}
const std::string& XdpDataplane::pin_dir() const {
  return impl_->pin_dir;
}

}  // namespace xgw::loader
