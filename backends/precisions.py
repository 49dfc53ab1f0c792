"""The numeric precisions a trial may ask a backend for (no torch import: config validation reads it)."""

PRECISIONS = ("fp32", "bf16", "int8")

# Instruction-set features that decide which precisions a CPU runs natively, as ``target.isa`` and the hardware
# profiles spell them, and the /proc/cpuinfo flags that show each.
ISA_FLAGS = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "vnni": ("avx512_vnni", "avx_vnni"),
    "avx512_bf16": ("avx512_bf16",),
    "amx": ("amx_tile",),
}
ISA_FEATURES = tuple(ISA_FLAGS)
# A precision runs natively (in its own units, not emulated or converted) on a CPU with any of these features.
NATIVE = {"fp32": (), "bf16": ("avx512_bf16", "amx"), "int8": ("vnni", "amx")}


def cpu_model_and_flags() -> tuple[str | None, set[str]]:
    """This CPU's model name and flags, from /proc/cpuinfo (Linux; (None, empty) elsewhere)."""
    model, flags = None, set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return model, flags


def host_isa() -> list[str]:
    """The features (:data:`ISA_FEATURES`) this CPU has."""
    return isa_of_flags(dict.fromkeys(cpu_model_and_flags()[1], True))


def isa_of_flags(flags: dict[str, bool]) -> list[str]:
    """The features (:data:`ISA_FEATURES`) a CPU has, from its flags as env.json records them."""
    return [feature for feature, names in ISA_FLAGS.items() if any(flags.get(n) for n in names)]


def not_native(precisions, isa: list[str]) -> list[str]:
    """Those of ``precisions`` that a CPU with features ``isa`` does not run natively, in order."""
    return [p for p in dict.fromkeys(precisions) if NATIVE.get(p) and not set(NATIVE[p]) & set(isa)]
