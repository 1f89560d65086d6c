#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the hand-made hwloc v2 XML topologies used by the flexslurm tests.

Usage: gen_topologies.py [OUTPUT_DIR]   (default: the directory of this script)

The files mimic what `lstopo --of xml` (hwloc 2.x) exports on real machines,
so that they can be loaded with hwloc_topology_set_xml() and walked like a
live topology:

  Machine
    Package                         (one NUMA node per package), or
    Package > Group (kind 1001)     (several NUMA nodes per package,
                                     the Group hwloc creates for them)
      NUMANode                      (memory child)
      Core > PU ...
      Bridge "HostBridge"  bridge_type="0-1" depth="0"
        Bridge "PCIBridge" bridge_type="1-1" depth="1"  (root port)
          PCIDev                    (the accelerator / NIC / VGA)
            OSDev ...               (what the vendor backends add)

I/O objects hang below the CPU-side object whose cpuset is the device's
locality, so hwloc_get_non_io_ancestor_obj() of a PCI device is the Package
(or Group) of its NUMA node.  I/O objects carry no cpuset/nodeset, exactly as
in real exports.

OS devices follow what hwloc 2.9's backends create:
  * NVML:  "nvml<N>", GPU (osdev_type 1), subtype NVML, infos Backend=NVML,
           GPUVendor, GPUModel, NVIDIASerial, NVIDIAUUID
           (hwloc/nvml.h finds these by the "nvml" name prefix).
  * CUDA:  "cuda<N>", CoProc (osdev_type 5), subtype CUDA, infos Backend=CUDA,
           GPUVendor, GPUModel, CUDAGlobalMemorySize (KiB), CUDAL2CacheSize
           (KiB), CUDAMultiProcessors, CUDACoresPerMP,
           CUDASharedMemorySizePerMP (KiB).
  * Linux DRM: "card<N>" and "renderD<M>", GPU (osdev_type 1), no subtype,
           no infos (the Linux backend only names them).
  * RSMI:  "rsmi<N>", GPU (osdev_type 1), subtype RSMI, infos Backend=RSMI,
           GPUVendor, GPUModel, AMDUUID ("%lx" of the 64-bit unique id),
           AMDSerial.
  * Ascend NPUs get no OS device (hwloc has no Ascend backend).

The big topologies also carry PCIVendor/PCIDevice infos on PCI devices (what
an hwloc built with libpciaccess and pci.ids adds); the small cluster ones do
not (like Debian's hwloc without the pci plugin), so both cases are covered.

Only the python3 standard library is used.
"""

import os
import sys
from xml.sax.saxutils import quoteattr

GiB = 1 << 30

# hwloc_obj_osdev_type_e
OSDEV_BLOCK, OSDEV_GPU, OSDEV_NETWORK, OSDEV_OPENFABRICS, OSDEV_DMA, OSDEV_COPROC = range(6)

# Group kind hwloc uses for the Group it creates around a NUMA node whose
# cpuset matches no other object (HWLOC_GROUP_KIND_MEMORY).
GROUP_KIND_MEMORY = 1001


# --------------------------------------------------------------------------
# Bitmaps
# --------------------------------------------------------------------------

def bitmap(indexes):
    """Format a set of indexes like hwloc_bitmap_snprintf() does.

    32-bit words, most significant first: "0x0000ffff,0xff000000";
    zero words in the middle are empty, a zero last word is "0x0".
    """
    indexes = set(indexes)
    if not indexes:
        return "0x0"
    nwords = max(indexes) // 32 + 1
    words = [0] * nwords
    for i in indexes:
        words[i // 32] |= 1 << (i % 32)
    words.reverse()
    parts = []
    for pos, word in enumerate(words):
        if pos == 0 or word:
            parts.append("0x%08x" % word)
        elif pos == nwords - 1:
            parts.append("0x0")
        else:
            parts.append("")
    return ",".join(parts)


# --------------------------------------------------------------------------
# Generic object tree and XML writer
# --------------------------------------------------------------------------

class Obj:
    """One hwloc object: type, ordered attributes, infos, children."""

    def __init__(self, type_, attrs=None, infos=None):
        self.type = type_
        self.attrs = list((attrs or {}).items())
        self.infos = list(infos or [])
        self.extra = []      # raw child elements (page_type)
        self.memory = []     # memory children (NUMANode)
        self.children = []   # normal children (Package, Group, Core, PU)
        self.io = []         # I/O children (Bridge, PCIDev, OSDev)

    def add(self, child):
        if child.type == "NUMANode":
            self.memory.append(child)
        elif child.type in ("Bridge", "PCIDev", "OSDev"):
            self.io.append(child)
        else:
            self.children.append(child)
        return child


def set_cpu_sets(obj, cpus, nodes, root=False):
    """cpuset/complete_cpuset/nodeset/complete_nodeset (+allowed_* on root)."""
    cs, ns = bitmap(cpus), bitmap(nodes)
    sets = [("cpuset", cs), ("complete_cpuset", cs)]
    if root:
        sets.append(("allowed_cpuset", cs))
    sets += [("nodeset", ns), ("complete_nodeset", ns)]
    if root:
        sets.append(("allowed_nodeset", ns))
    obj.attrs += sets  # write_xml() moves them before gp_index


def write_xml(root, path):
    """Serialize like hwloc 2.x: attributes, infos, memory, normal, I/O children.

    gp_index values are assigned here, in document order, so they are unique.
    """
    counter = [0]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE topology SYSTEM "hwloc2.dtd">',
        '<topology version="2.0">',
    ]

    def emit(obj, indent):
        counter[0] += 1
        attrs = [("type", obj.type)]
        # hwloc writes os_index and the sets before gp_index, then the rest.
        head = [a for a in obj.attrs if a[0] == "os_index" or a[0].endswith("set")]
        tail = [a for a in obj.attrs if a not in head]
        attrs += head + [("gp_index", str(counter[0]))] + tail
        text = " ".join("%s=%s" % (k, quoteattr(str(v))) for k, v in attrs)
        body = ['<info name=%s value=%s/>' % (quoteattr(k), quoteattr(str(v))) for k, v in obj.infos]
        body += obj.extra
        pad = "  " * indent
        kids = obj.memory + obj.children + obj.io
        if not body and not kids:
            lines.append("%s<object %s/>" % (pad, text))
            return
        lines.append("%s<object %s>" % (pad, text))
        for b in body:
            lines.append("%s  %s" % (pad, b))
        for kid in kids:
            emit(kid, indent + 1)
        lines.append("%s</object>" % pad)

    emit(root, 1)
    lines.append("</topology>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# CPU side: Machine > Package [> Group] > NUMANode + Core > PU
# --------------------------------------------------------------------------

class Numa:
    """One NUMA domain: its cores (1 PU each), memory and PCI roots."""

    def __init__(self, cores, memory, pci_roots=()):
        self.cores = cores
        self.memory = memory
        self.pci_roots = list(pci_roots)


def numa_node(os_index, cpus, memory):
    node = Obj("NUMANode", {"os_index": os_index, "local_memory": memory})
    set_cpu_sets(node, cpus, [os_index])
    node.extra = [
        '<page_type size="4096" count="%d"/>' % (memory // 4096),
        '<page_type size="2097152" count="0"/>',
        '<page_type size="1073741824" count="0"/>',
    ]
    return node


def machine(hostname, arch, cpu_vendor, cpu_model, packages, description):
    """Build Machine > Package... from a list of packages (lists of Numa).

    PUs, cores and NUMA nodes are numbered in order across the machine.
    Each Numa's PCI roots are attached below the object whose cpuset is that
    NUMA node's cpuset (the Package, or the memory Group inside it).
    """
    root = Obj("Machine", {"os_index": 0}, infos=[
        ("Backend", "Linux"),
        ("OSName", "Linux"),
        ("HostName", hostname),
        ("Architecture", arch),
        ("hwlocVersion", "2.9.0"),
        ("FlexslurmTestTopology", description),
    ])
    next_pu = 0
    next_node = 0
    all_cpus, all_nodes = [], []
    for pkg_index, numas in enumerate(packages):
        pkg = root.add(Obj("Package", {"os_index": pkg_index},
                           infos=[("CPUVendor", cpu_vendor), ("CPUModel", cpu_model)]))
        pkg_cpus, pkg_nodes = [], []
        for numa in numas:
            cpus = list(range(next_pu, next_pu + numa.cores))
            node_index = next_node
            next_pu += numa.cores
            next_node += 1
            # One NUMA node per package: it and the I/O hang off the Package.
            # Several: hwloc puts each NUMA node in a Group of its cpuset.
            if len(numas) == 1:
                host = pkg
            else:
                host = pkg.add(Obj("Group", {"kind": GROUP_KIND_MEMORY, "subkind": 0}))
                set_cpu_sets(host, cpus, [node_index])
            host.add(numa_node(node_index, cpus, numa.memory))
            for cpu in cpus:
                core = host.add(Obj("Core", {"os_index": cpu}))
                set_cpu_sets(core, [cpu], [node_index])
                pu = core.add(Obj("PU", {"os_index": cpu}))
                set_cpu_sets(pu, [cpu], [node_index])
            # hwloc lists I/O children in PCI bus order.
            for pci_root in sorted(numa.pci_roots, key=lambda b: dict(b.attrs)["bridge_pci"]):
                host.add(pci_root)
            pkg_cpus += cpus
            pkg_nodes.append(node_index)
        set_cpu_sets(pkg, pkg_cpus, pkg_nodes)
        all_cpus += pkg_cpus
        all_nodes += pkg_nodes
    set_cpu_sets(root, all_cpus, all_nodes, root=True)
    return root


# --------------------------------------------------------------------------
# I/O side: HostBridge > root port > PCI device > OS devices
# --------------------------------------------------------------------------

class Dev:
    """A PCI endpoint: ids, PCIe link, optional pci.ids names and OS devices."""

    def __init__(self, busid, vendor, device, class_id, subvendor, subdevice,
                 revision, link_speed, names=None, osdevs=()):
        self.busid = busid
        self.vendor, self.device, self.class_id = vendor, device, class_id
        self.subvendor, self.subdevice, self.revision = subvendor, subdevice, revision
        self.link_speed = link_speed
        self.names = names          # (PCIVendor, PCIDevice or None) or None
        self.osdevs = list(osdevs)

    @property
    def bus(self):
        return int(self.busid.split(":")[1], 16)


# PCIe bandwidth of a x16 link in GB/s, the way hwloc computes pci_link_speed.
GEN3_X16 = 15.753846
GEN4_X16 = 31.507692
GEN5_X16 = 63.015385
GEN2_X1 = 0.5


def pci_type(class_id, vendor, device, subvendor, subdevice, revision):
    return "%04x [%04x:%04x] [%04x:%04x] %02x" % (
        class_id, vendor, device, subvendor, subdevice, revision)


def pci_dev(dev):
    obj = Obj("PCIDev", {
        "pci_busid": dev.busid,
        "pci_type": pci_type(dev.class_id, dev.vendor, dev.device,
                             dev.subvendor, dev.subdevice, dev.revision),
        "pci_link_speed": "%f" % dev.link_speed,
    })
    if dev.names:
        obj.infos.append(("PCIVendor", dev.names[0]))
        if dev.names[1]:
            obj.infos.append(("PCIDevice", dev.names[1]))
    for osdev in dev.osdevs:
        obj.add(osdev)
    return obj


def pci_root(domain_bus, root_port, devices):
    """A HostBridge for root bus `domain_bus` with one root port per device.

    root_port = (vendor, device, revision) of the root ports; they sit at
    <root bus>:01.0, :02.0, ... and each leads to its device's bus only.
    """
    domain, root_bus = (int(x, 16) for x in domain_bus.split(":"))
    last_bus = max(d.bus for d in devices)
    host = Obj("Bridge", {
        "bridge_type": "0-1",
        "depth": 0,
        "bridge_pci": "%04x:[%02x-%02x]" % (domain, root_bus, last_bus),
    })
    for slot, dev in enumerate(sorted(devices, key=lambda d: d.busid), start=1):
        rp_vendor, rp_device, rp_rev = root_port
        port = host.add(Obj("Bridge", {
            "bridge_type": "1-1",
            "depth": 1,
            "bridge_pci": "%04x:[%02x-%02x]" % (domain, dev.bus, dev.bus),
            "pci_busid": "%04x:%02x:%02x.0" % (domain, root_bus, slot),
            "pci_type": pci_type(0x0604, rp_vendor, rp_device, 0, 0, rp_rev),
            "pci_link_speed": "%f" % dev.link_speed,
        }))
        port.add(pci_dev(dev))
    return host


def osdev(name, osdev_type, subtype=None, infos=()):
    attrs = {"name": name}
    if subtype:
        attrs["subtype"] = subtype
    attrs["osdev_type"] = osdev_type
    return Obj("OSDev", attrs, infos=infos)


# --------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------

INTEL_ROOT_PORT = (0x8086, 0x352a, 0x04)    # Sapphire Rapids PCIe root port
AMD_ROOT_PORT = (0x1022, 0x1483, 0x00)      # EPYC (Zen 2/3) GPP bridge
KUNPENG_ROOT_PORT = (0x19e5, 0xa120, 0x21)  # Kunpeng 920 PCIe root port


def fake_nvidia_uuid(seed, index):
    return "GPU-%08x-%04x-%04x-%04x-%012x" % (
        0x5eed0000 + seed * 0x100 + index, 0x1000 + index, 0x4000 + seed,
        0x8000 + index, 0xf1e550000000 + seed * 0x1000 + index)


def nvidia_gpu(busid, index, model, device, subdevice, link_speed, mem_kib,
               sms, cores_per_sm, l2_kib, shmem_kib, seed, names=None):
    """NVIDIA GPU with the NVML ("nvmlN") and CUDA ("cudaN") OS devices."""
    vendor = "NVIDIA Corporation"
    nvml = osdev("nvml%d" % index, OSDEV_GPU, "NVML", [
        ("Backend", "NVML"),
        ("GPUVendor", vendor),
        ("GPUModel", model),
        ("NVIDIASerial", "%013d" % (1650000000000 + seed * 100 + index)),
        ("NVIDIAUUID", fake_nvidia_uuid(seed, index)),
    ])
    cuda = osdev("cuda%d" % index, OSDEV_COPROC, "CUDA", [
        ("Backend", "CUDA"),
        ("GPUVendor", vendor),
        ("GPUModel", model),
        ("CUDAGlobalMemorySize", mem_kib),
        ("CUDAL2CacheSize", l2_kib),
        ("CUDAMultiProcessors", sms),
        ("CUDACoresPerMP", cores_per_sm),
        ("CUDASharedMemorySizePerMP", shmem_kib),
    ])
    return Dev(busid, 0x10de, device, 0x0302, 0x10de, subdevice, 0xa1,
               link_speed, names, [nvml, cuda])


def h100(busid, index, seed):
    return nvidia_gpu(busid, index, "NVIDIA H100 80GB HBM3", 0x2330, 0x16c1,
                      GEN5_X16, 83886080, 132, 128, 51200, 228, seed,
                      names=("NVIDIA Corporation", "GH100 [H100 SXM5 80GB]"))


def tesla_t4(busid, index, seed):
    return nvidia_gpu(busid, index, "Tesla T4", 0x1eb8, 0x12a2,
                      GEN3_X16, 15728640, 40, 64, 4096, 64, seed)


def mi210(busid, index, card, seed, names=True):
    """AMD MI210 with Linux DRM ("cardN", "renderDM") and RSMI OS devices."""
    rsmi = osdev("rsmi%d" % index, OSDEV_GPU, "RSMI", [
        ("Backend", "RSMI"),
        ("GPUVendor", "AMD"),
        ("GPUModel", "AMD Instinct MI210"),
        ("AMDUUID", "%x" % (0x6d2f1a0c8e4b0000 + seed * 0x100 + index)),
        ("AMDSerial", "%016X" % (0x0000a21000000000 + seed * 0x100 + index)),
    ])
    return Dev(busid, 0x1002, 0x740f, 0x0380, 0x1002, 0x0c34, 0x02, GEN4_X16,
               ("Advanced Micro Devices, Inc. [AMD/ATI]",
                "Aldebaran/MI200 [Instinct MI210]") if names else None,
               [osdev("card%d" % card, OSDEV_GPU),
                osdev("renderD%d" % (128 + card - 1), OSDEV_GPU),
                rsmi])


def ascend_npu(busid, names=True):
    """Huawei Ascend 910B NPU: PCI device only, hwloc has no Ascend backend.

    Only PCIVendor is set: the device name is not taken from pci.ids, so
    consumers must identify 19e5:d802 by its ids.
    """
    return Dev(busid, 0x19e5, 0xd802, 0x1200, 0x19e5, 0x0100, 0x20, GEN4_X16,
               ("Huawei Technologies Co., Ltd.", None) if names else None)


def intel_e810(busid, ifname, mac):
    """A NIC: PCI device with a network OS device, not an accelerator."""
    return Dev(busid, 0x8086, 0x1593, 0x0200, 0x8086, 0x0005, 0x02, GEN4_X16,
               ("Intel Corporation", "Ethernet Controller E810-C for SFP"),
               [osdev(ifname, OSDEV_NETWORK, infos=[("Address", mac)])])


def aspeed_vga(busid):
    """BMC VGA (class 0300) with its DRM card0: a GPU osdev, not an accelerator."""
    return Dev(busid, 0x1a03, 0x2000, 0x0300, 0x1a03, 0x2000, 0x52, GEN2_X1,
               ("ASPEED Technology, Inc.", "ASPEED Graphics Family"),
               [osdev("card0", OSDEV_GPU)])


# --------------------------------------------------------------------------
# Topologies
# --------------------------------------------------------------------------

def nvidia_8gpu_2numa():
    """2 x (16 cores, 256 GiB), 8 x H100 SXM5 (4 per NUMA), NIC + VGA on NUMA 0."""
    buses0 = ["18", "2a", "3a", "5d"]
    buses1 = ["9a", "ab", "ba", "db"]
    gpus = [h100("0000:%s:00.0" % b, i, seed=1) for i, b in enumerate(buses0 + buses1)]
    # Root bus of each GPU: the bus just below it (one HostBridge per GPU,
    # as on Sapphire Rapids where every x16 root port is its own root bus).
    roots0 = [pci_root("0000:%02x" % (g.bus - 1), INTEL_ROOT_PORT, [g]) for g in gpus[:4]]
    roots1 = [pci_root("0000:%02x" % (g.bus - 1), INTEL_ROOT_PORT, [g]) for g in gpus[4:]]
    roots0.insert(0, pci_root("0000:00", INTEL_ROOT_PORT, [aspeed_vga("0000:03:00.0")]))
    roots0.append(pci_root("0000:6f", INTEL_ROOT_PORT,
                           [intel_e810("0000:70:00.0", "ens2f0", "b4:96:91:a0:00:10")]))
    return machine(
        "gpu-h100-01", "x86_64", "GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+",
        [[Numa(16, 256 * GiB, roots0)], [Numa(16, 256 * GiB, roots1)]],
        "nvidia-8gpu-2numa")


def amd_4gpu():
    """1 package, 2 NUMA x 8 cores, 4 x MI210 (2 per NUMA), NIC + VGA on NUMA 0."""
    buses = ["03", "23", "43", "63"]
    gpus = [mi210("0000:%s:00.0" % b, i, card=i + 1, seed=2) for i, b in enumerate(buses)]
    roots = [pci_root("0000:%02x" % (g.bus - 1), AMD_ROOT_PORT, [g]) for g in gpus]
    roots0 = [pci_root("0000:00", AMD_ROOT_PORT, [aspeed_vga("0000:01:00.0")])] + roots[:2]
    roots0.append(pci_root("0000:30", AMD_ROOT_PORT,
                           [intel_e810("0000:31:00.0", "ens1f0", "b4:96:91:a0:00:20")]))
    return machine(
        "gpu-mi210-01", "x86_64", "AuthenticAMD", "AMD EPYC 7313 16-Core Processor",
        [[Numa(8, 64 * GiB, roots0), Numa(8, 64 * GiB, roots[2:])]],
        "amd-4gpu")


def ascend_8npu():
    """2 x (24 cores, 256 GiB), 8 x Ascend 910B (4 per NUMA), NIC + VGA on NUMA 0."""
    npu = {b: ascend_npu("0000:%s:00.0" % b, names=True)
           for b in ["01", "02", "41", "42", "81", "82", "c1", "c2"]}
    roots0 = [
        pci_root("0000:00", KUNPENG_ROOT_PORT, [npu["01"], npu["02"]]),
        pci_root("0000:40", KUNPENG_ROOT_PORT, [npu["41"], npu["42"]]),
        pci_root("0000:20", KUNPENG_ROOT_PORT,
                 [aspeed_vga("0000:21:00.0"),
                  intel_e810("0000:22:00.0", "enp34s0f0", "b4:96:91:a0:00:30")]),
    ]
    roots1 = [
        pci_root("0000:80", KUNPENG_ROOT_PORT, [npu["81"], npu["82"]]),
        pci_root("0000:c0", KUNPENG_ROOT_PORT, [npu["c1"], npu["c2"]]),
    ]
    return machine(
        "npu-910b-01", "aarch64", "HiSilicon", "Kunpeng-920",
        [[Numa(24, 256 * GiB, roots0)], [Numa(24, 256 * GiB, roots1)]],
        "ascend-8npu")


def cluster_node(description, hostname, root_port, devices):
    """Local test-cluster node: 1 package, 1 NUMA node, 2 cores (PUs 0-1).

    Every device gets its own HostBridge whose root bus is the bus above it.
    """
    roots = [pci_root("0000:%02x" % (d.bus - 1), root_port, [d]) for d in devices]
    return machine(hostname, "x86_64", "GenuineIntel", "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
                   [[Numa(2, 8 * GiB, roots)]], description)


def cluster_nvidia(buses, description, hostname):
    gpus = [tesla_t4("0000:%s:00.0" % b, i, seed=10 + len(buses)) for i, b in enumerate(buses)]
    return cluster_node(description, hostname, INTEL_ROOT_PORT, gpus)


def cluster_amd_2gpu():
    gpus = [mi210("0000:%s:00.0" % b, i, card=i + 1, seed=20, names=False)
            for i, b in enumerate(["03", "43"])]
    return cluster_node("cluster-amd-2gpu", "amd-node", AMD_ROOT_PORT, gpus)


def cluster_ascend_2npu():
    npus = [ascend_npu("0000:%s:00.0" % b, names=False) for b in ["01", "81"]]
    return cluster_node("cluster-ascend-2npu", "ascend-node", KUNPENG_ROOT_PORT, npus)


def cluster_mixed_nvidia_ascend():
    """A mixed node: one Tesla T4 (NVML/CUDA OS devices) and one Ascend 910B (PCI device only)."""
    devices = [tesla_t4("0000:3b:00.0", 0, seed=30), ascend_npu("0000:81:00.0", names=False)]
    return cluster_node("cluster-mixed-nvidia-ascend", "mixed-node", INTEL_ROOT_PORT, devices)


TOPOLOGIES = {
    "nvidia-8gpu-2numa.xml": nvidia_8gpu_2numa,
    "amd-4gpu.xml": amd_4gpu,
    "ascend-8npu.xml": ascend_8npu,
    "cluster-nvidia-1gpu.xml": lambda: cluster_nvidia(["3b"], "cluster-nvidia-1gpu", "nvidia-node"),
    "cluster-nvidia-2gpu.xml": lambda: cluster_nvidia(["3b", "af"], "cluster-nvidia-2gpu", "nvidia-node"),
    "cluster-nvidia-4gpu.xml": lambda: cluster_nvidia(["3b", "5e", "af", "d8"], "cluster-nvidia-4gpu",
                                                      "nvidia4-node"),
    "cluster-nvidia-8gpu.xml": lambda: cluster_nvidia(["18", "3b", "5e", "86", "af", "b1", "d8", "db"],
                                                      "cluster-nvidia-8gpu", "nvidia8-node"),
    "cluster-amd-2gpu.xml": cluster_amd_2gpu,
    "cluster-ascend-2npu.xml": cluster_ascend_2npu,
    "cluster-mixed-nvidia-ascend.xml": cluster_mixed_nvidia_ascend,
}


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name, build in TOPOLOGIES.items():
        path = os.path.join(outdir, name)
        write_xml(build(), path)
        print("wrote", path)


if __name__ == "__main__":
    main()
