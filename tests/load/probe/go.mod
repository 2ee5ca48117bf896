module hotswap.invalid/loadprobe

go 1.19
