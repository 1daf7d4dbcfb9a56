/* Debian 12's wine (8.0) has no bcryptprimitives.dll, whose ProcessPrng Rust's std (1.78 and
 * later) imports on Windows for its random seeds. Windows 10+ has it; for wine, tests/windows.rs
 * builds this DLL with mingw-w64 and puts it in the wine prefix. It fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036), which wine implements. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG n = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}
