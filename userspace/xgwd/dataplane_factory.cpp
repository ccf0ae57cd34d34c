#include "xgwd/dataplane_factory.h"

#include "common/log.h"
#include "dataplane/userspace_dataplane.h"
#include "dataplane/xfrm_dataplane.h"

namespace xgw::xgwd {

BackendChoice choose_backend(const DataplaneConfig& cfg) {
  if (cfg.backend == "userspace") return {"userspace", "configured"};
  std::string why;
  const bool esp = dp::xfrm_esp_available(&why);
  if (cfg.backend == "xfrm") {
    // The operator's word stands, but a kernel without ESP will drop
    // everything the XDP program passes to it: say so loudly.
    if (!esp) log::warn("dataplane.xfrm_unavailable", {{"reason", why}});
    return {"xfrm", esp ? "configured" : "configured, but " + why};
  }
  if (esp) return {"xfrm", "auto: the kernel installs ESP SAs"};
  return {"userspace", "auto: fell back to userspace, " + why};
}

Expected<std::unique_ptr<dp::Dataplane>, std::string> make_dataplane(const Config& cfg,
                                                                     std::string* chosen_reason) {
  DataplaneConfig d = cfg.dataplane;
  d.backend = ike_backend(cfg);
  const BackendChoice c = choose_backend(d);
  if (chosen_reason) *chosen_reason = c.backend + ": " + c.reason;
  if (c.backend == "xfrm") {
    auto x = dp::XfrmDataplane::create();
    if (!x) return unexpected("xfrm backend: " + x.error());
    return std::unique_ptr<dp::Dataplane>(std::move(*x));
  }
  dp::UserspaceOptions uo;
  uo.tun_name = cfg.ike.tun;
  uo.mtu = cfg.ike.mtu;
  uo.workers = cfg.ike.workers;
  uo.raw_esp = cfg.ike.raw_esp;
  auto u = dp::UserspaceDataplane::create(uo);
  if (!u) return unexpected("userspace backend: " + u.error());
  return std::unique_ptr<dp::Dataplane>(std::move(*u));
}

}  // namespace xgw::xgwd
