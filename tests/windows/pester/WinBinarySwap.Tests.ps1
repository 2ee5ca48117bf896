# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

# Pester 5 tests of the module util of win_binary_swap: plugins/module_utils/WinBinarySwap.psm1
# and the WinSwap*.psm1 files it requires.
#
#   Invoke-Pester tests/windows/pester            (from the collection root; Pester >= 5.0)
#
# No Windows service is touched: the service, health, download and sleep operations of
# Invoke-BinarySwap are scriptblocks, replaced here by fakes that act on plain files in $TestDrive.
# Nothing here needs Windows itself, so the tests should also run under PowerShell 7 on Linux or
# macOS. NOT RUN YET: no PowerShell runtime was available when they were written (docs/windows.md).

BeforeAll {
    # Every file of the module util, imported globally as Ansible does: they call each other's
    # exported functions (the #AnsibleRequires lines at their tops).
    $utilDir = [System.IO.Path]::Combine($PSScriptRoot, '..', '..', '..', 'plugins', 'module_utils')
    foreach ($util in @('WinSwapCommon', 'WinSwapArtifact', 'WinSwapPath', 'WinSwapLedger', 'WinSwapService',
            'WinSwapHttp', 'WinSwapRollback', 'WinSwapActivation', 'WinBinarySwap')) {
        $modulePath = [System.IO.Path]::Combine($utilDir, "$util.psm1")
        Import-Module -Name ([System.IO.Path]::GetFullPath($modulePath)) -Force -Scope Global
    }

    Function New-PeBytes {
        # A minimal PE image: 64-byte DOS header with e_lfanew, 'PE\0\0', the 20-byte COFF header,
        # then Payload so that different "builds" have different digests.
        param (
            [int]$Machine = 0x8664,
            [int]$Characteristics = 0x0022,
            [int]$Lfanew = 0x40,
            [string]$Payload = 'build'
        )
        $bytes = New-Object -TypeName byte[] -ArgumentList ($Lfanew + 24)
        $bytes[0] = 0x4D
        $bytes[1] = 0x5A
        [BitConverter]::GetBytes([uint32]$Lfanew).CopyTo($bytes, 0x3C)
        $bytes[$Lfanew] = 0x50
        $bytes[$Lfanew + 1] = 0x45
        [BitConverter]::GetBytes([uint16]$Machine).CopyTo($bytes, $Lfanew + 4)
        [BitConverter]::GetBytes([uint16]$Characteristics).CopyTo($bytes, $Lfanew + 22)
        $tail = [System.Text.Encoding]::ASCII.GetBytes($Payload)
        , [byte[]]($bytes + $tail)
    }

    Function Get-BytesSha256 {
        param ([byte[]]$Bytes)
        $sha = [System.Security.Cryptography.SHA256]::Create()
        try {
            ([BitConverter]::ToString($sha.ComputeHash($Bytes)) -replace '-', '').ToLowerInvariant()
        }
        finally {
            $sha.Dispose()
        }
    }

    Function New-TestDir {
        $dir = Join-Path -Path $TestDrive -ChildPath ([Guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $dir
        $dir
    }

    Function Get-DirListing {
        param ([string]$Dir)
        @(Get-ChildItem -LiteralPath $Dir -Recurse -Force | ForEach-Object {
                '{0} {1}' -f $_.FullName, $(if ($_.PSIsContainer) { 'dir' } else { (Get-FileHash -LiteralPath $_.FullName).Hash })
            } | Sort-Object)
    }

    Function New-FakeService {
        # The fake service "runs" whatever binary is at $State.Exe; versions come from $State.Versions
        # (sha256 -> version). Every call is recorded in $State.Events.
        param ([hashtable]$State)
        @{
            GetServiceInfo = {
                param ($Name)
                if ($State.Missing) {
                    return $null
                }
                [PSCustomObject]@{ Name = $Name; Status = $State.Status; StartMode = $State.StartMode; BinaryPath = "`"$($State.Exe)`"" }
            }.GetNewClosure()
            StopService = {
                param ($Name, $TimeoutSeconds)
                $null = $State.Events.Add('stop')
                if ($State.FailStop) {
                    throw "service '$Name' did not stop within $TimeoutSeconds s (status: StopPending)"
                }
                $State.Status = 'Stopped'
            }.GetNewClosure()
            StartService = {
                param ($Name, $TimeoutSeconds, $Dependents)
                $sha = (Get-FileHash -LiteralPath $State.Exe -Algorithm SHA256).Hash.ToLowerInvariant()
                $null = $State.Events.Add("start:$($State.Versions[$sha])")
                if ($State.FailStartSha -eq $sha) {
                    throw "service '$Name' did not reach Running within $TimeoutSeconds s (status: Stopped)"
                }
                $State.Status = 'Running'
            }.GetNewClosure()
            HealthRequest = {
                param ($Url, $ValidateCerts, $TimeoutSeconds)
                $sha = (Get-FileHash -LiteralPath $State.Exe -Algorithm SHA256).Hash.ToLowerInvariant()
                $null = $State.Events.Add("health:$($State.Versions[$sha])")
                if ($State.UnreachableSha -eq $sha) {
                    throw (New-Object -TypeName System.Net.WebException -ArgumentList 'Unable to connect to the remote server')
                }
                if ($State.UnhealthySha -eq $sha) {
                    return @{ StatusCode = 503; Body = 'starting' }
                }
                $version = $State.Versions[$sha]
                if ($State.ReportVersion) {
                    $version = $State.ReportVersion
                }
                @{ StatusCode = 200; Body = (ConvertTo-Json -InputObject @{ version = $version } -Compress) }
            }.GetNewClosure()
            Downloader = {
                param ($Url, $OutFile, $ValidateCerts)
                $null = $State.Events.Add("download:$Url")
                Copy-Item -LiteralPath $State.Downloads[$Url] -Destination $OutFile
            }.GetNewClosure()
            Sleep = {
                param ($Seconds)
                $null = $State.Events.Add("sleep:$Seconds")
            }.GetNewClosure()
        }
    }

    Function Invoke-TestSwap {
        # Invoke-BinarySwap on the files of the current test with the fake service; Extra overrides.
        param ([hashtable]$Extra = @{})
        $params = @{
            Path = $exe
            Src = $src
            Checksum = "sha256:$newSha"
            Service = 'app'
            ReleaseId = '2.0.0-new'
            Version = '2.0.0'
            HostArch = 'x86_64'
            MountPoints = @()
            HealthUrl = 'http://127.0.0.1:8080/healthz'
            ExpectedVersion = '2.0.0'
            HealthRetries = 2
            HealthInterval = 1
        }
        foreach ($key in $fake.Keys) {
            $params[$key] = $fake[$key]
        }
        foreach ($key in $Extra.Keys) {
            $params[$key] = $Extra[$key]
        }
        Invoke-BinarySwap @params
    }

    Function Set-LiveRelease {
        # Records ReleaseId as the active release with the digest of Bytes (as an earlier swap would).
        param ([string]$Dir, [string]$ReleaseId, [byte[]]$Bytes, [string]$Version)
        $ledgerPath = [System.IO.Path]::Combine($Dir, '.hotswap', 'ledger.json')
        $ledger = Read-SwapLedger -Path $ledgerPath
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $ReleaseId -Version $Version -Digest (Get-BytesSha256 $Bytes) -Binary 'app.exe'
        Add-SwapLedgerActivation -Ledger $ledger -ReleaseId $ReleaseId -PreviousReleaseId $null -By 'test'
        Write-SwapLedger -Path $ledgerPath -Ledger $ledger
    }
}

Describe 'Get-PeMachine' {
    It 'reads the machine of an x64 exe' {
        $pe = Get-PeMachine -Bytes (New-PeBytes -Machine 0x8664)
        $pe.IsPe | Should -BeTrue
        $pe.Machine | Should -Be 0x8664
        $pe.Arch | Should -Be 'x86_64'
        $pe.IsExecutable | Should -BeTrue
        $pe.IsDll | Should -BeFalse
        $pe.Problem | Should -BeNullOrEmpty
    }

    It 'names <Machine> as <Arch>' -TestCases @(
        @{ Machine = 0xAA64; Arch = 'aarch64' }
        @{ Machine = 0x014C; Arch = 'i386' }
        @{ Machine = 0x01C4; Arch = 'arm' }
        @{ Machine = 0x0200; Arch = 'pe-machine-0x0200' }
    ) {
        param ($Machine, $Arch)
        (Get-PeMachine -Bytes (New-PeBytes -Machine $Machine)).Arch | Should -Be $Arch
    }

    It 'reads a file, also with e_lfanew beyond the first 4 KiB' {
        $file = Join-Path -Path $TestDrive -ChildPath 'far.exe'
        [System.IO.File]::WriteAllBytes($file, (New-PeBytes -Machine 0xAA64 -Lfanew 0x2000))
        $pe = Get-PeMachine -Path $file
        $pe.Arch | Should -Be 'aarch64'
        $pe.Problem | Should -BeNullOrEmpty
    }

    It 'flags a DLL' {
        $pe = Get-PeMachine -Bytes (New-PeBytes -Characteristics 0x2022)
        $pe.IsDll | Should -BeTrue
        $pe.Problem | Should -BeLike '*DLL*'
    }

    It 'flags an image not marked executable' {
        (Get-PeMachine -Bytes (New-PeBytes -Characteristics 0x0020)).Problem | Should -BeLike '*not marked as an executable*'
    }

    It 'refuses data without MZ' {
        $bytes = New-PeBytes
        $bytes[0] = 0x7F
        $pe = Get-PeMachine -Bytes $bytes
        $pe.IsPe | Should -BeFalse
        $pe.Problem | Should -BeLike "*'MZ'*"
    }

    It 'refuses data shorter than a DOS header' {
        (Get-PeMachine -Bytes ([byte[]](0x4D, 0x5A, 0, 0))).Problem | Should -BeLike '*shorter than a DOS header*'
    }

    It 'refuses an e_lfanew past the end' {
        $bytes = New-PeBytes
        [BitConverter]::GetBytes([uint32]0x10000).CopyTo($bytes, 0x3C)
        (Get-PeMachine -Bytes $bytes).Problem | Should -BeLike '*past the end*'
    }

    It 'refuses a DOS program without the PE signature' {
        $bytes = New-PeBytes
        $bytes[0x40] = 0x4E
        (Get-PeMachine -Bytes $bytes).Problem | Should -BeLike "*no 'PE\0\0' signature*"
    }
}

Describe 'Test-PeFitsHost and architecture names' {
    It 'accepts <Machine> on <HostArch>: <Fits>' -TestCases @(
        @{ Machine = 0x8664; HostArch = 'x86_64'; Fits = $true }
        @{ Machine = 0xAA64; HostArch = 'aarch64'; Fits = $true }
        @{ Machine = 0x014C; HostArch = 'i386'; Fits = $true }
        @{ Machine = 0x014C; HostArch = 'x86_64'; Fits = $false }
        @{ Machine = 0x014C; HostArch = 'aarch64'; Fits = $false }
        @{ Machine = 0x8664; HostArch = 'aarch64'; Fits = $false }
        @{ Machine = 0xAA64; HostArch = 'x86_64'; Fits = $false }
    ) {
        param ($Machine, $HostArch, $Fits)
        Test-PeFitsHost -Pe (Get-PeMachine -Bytes (New-PeBytes -Machine $Machine)) -HostArch $HostArch | Should -Be $Fits
    }

    It 'never accepts a DLL' {
        Test-PeFitsHost -Pe (Get-PeMachine -Bytes (New-PeBytes -Characteristics 0x2022)) -HostArch 'x86_64' | Should -BeFalse
    }

    It 'normalizes <Name> to <Arch>' -TestCases @(
        @{ Name = 'X64'; Arch = 'x86_64' }
        @{ Name = 'AMD64'; Arch = 'x86_64' }
        @{ Name = 'Arm64'; Arch = 'aarch64' }
        @{ Name = 'ARM64'; Arch = 'aarch64' }
        @{ Name = 'X86'; Arch = 'i386' }
        @{ Name = 'x86'; Arch = 'i386' }
        @{ Name = 'Arm'; Arch = 'arm' }
        @{ Name = ''; Arch = 'unknown' }
    ) {
        param ($Name, $Arch)
        ConvertTo-ArchitectureName -Name $Name | Should -Be $Arch
    }

    It 'reports a host architecture' {
        Get-HostArchitecture | Should -Not -BeNullOrEmpty
    }
}

Describe 'Test-ReleaseId' {
    It 'accepts <Id>' -TestCases @(
        @{ Id = '1.4.2-3a7bd3e2360a' }
        @{ Id = 'v2_rc+build.7' }
        @{ Id = 'a' * 128 }
    ) {
        param ($Id)
        Test-ReleaseId -ReleaseId $Id | Should -BeTrue
    }

    It 'refuses <Id> (<Why>)' -TestCases @(
        @{ Id = ''; Why = 'empty' }
        @{ Id = 'a' * 129; Why = '129 characters' }
        @{ Id = '1.0/evil'; Why = 'slash' }
        @{ Id = '1.0\evil'; Why = 'backslash' }
        @{ Id = '1..0'; Why = 'dot dot' }
        @{ Id = '.hidden'; Why = 'leading dot' }
        @{ Id = '1.0 beta'; Why = 'space' }
        @{ Id = '1.0~2'; Why = 'tilde (copy suffix separator)' }
        @{ Id = "r$([char]0x00E9)lease"; Why = 'non-ASCII letters' }
    ) {
        param ($Id, $Why)
        Test-ReleaseId -ReleaseId $Id | Should -BeFalse
    }

    It 'says what is wrong and how to fix it' {
        { Assert-ReleaseId -ReleaseId '.x' } | Should -Throw -ExpectedMessage "*starts with '.'*Use a name made of*"
    }
}

Describe 'ConvertFrom-Checksum' {
    It 'returns the lower-case digest' {
        ConvertFrom-Checksum -Checksum (' SHA256:' + ('AB' * 32) + ' ') | Should -BeExactly ('ab' * 32)
    }

    It 'refuses <Checksum> with <Message>' -TestCases @(
        @{ Checksum = ''; Message = '*it is empty*' }
        @{ Checksum = ('ab' * 32); Message = '*has no algorithm prefix*Write it as sha256:*' }
        @{ Checksum = 'md5:0123456789abcdef0123456789abcdef'; Message = "*algorithm 'md5' is not supported*" }
        @{ Checksum = 'sha256:abc'; Message = '*expected 64 hex digits, got 3*' }
        @{ Checksum = 'not a checksum'; Message = '*not of the form <algorithm>:<hex digest>*' }
    ) {
        param ($Checksum, $Message)
        { ConvertFrom-Checksum -Checksum $Checksum } | Should -Throw -ExpectedMessage $Message
    }
}

Describe 'Test-SameVolume' {
    It 'compares drive roots without mount points' {
        $a = Join-Path -Path $TestDrive -ChildPath 'a'
        $b = Join-Path -Path $TestDrive -ChildPath 'b'
        Test-SameVolume -Path $a -OtherPath $b -MountPoints @() | Should -BeTrue
        Get-VolumeRoot -Path $a -MountPoints @() | Should -Be ([System.IO.Path]::GetPathRoot($a))
    }

    It 'tells apart a volume mounted in a folder' {
        $mounted = Join-Path -Path $TestDrive -ChildPath 'mnt'
        $inside = Join-Path -Path $mounted -ChildPath 'staging'
        $outside = Join-Path -Path $TestDrive -ChildPath 'app'
        $root = [System.IO.Path]::GetPathRoot($outside)
        Test-SameVolume -Path $inside -OtherPath $outside -MountPoints @($root, $mounted) | Should -BeFalse
        Test-SameVolume -Path $inside -OtherPath $mounted -MountPoints @($root, $mounted) | Should -BeTrue
    }

    It 'picks the longest mount point that holds the path' {
        $mounted = Join-Path -Path $TestDrive -ChildPath 'Mnt'
        $deeper = Join-Path -Path $mounted -ChildPath 'deeper'
        $file = Join-Path -Path $deeper -ChildPath 'x'
        $expected = $deeper + [System.IO.Path]::DirectorySeparatorChar
        Get-VolumeRoot -Path $file -MountPoints @($mounted, $deeper) | Should -Be $expected
    }
}

Describe 'Ledger' {
    BeforeEach {
        $dir = New-TestDir
        $ledgerPath = [System.IO.Path]::Combine($dir, '.hotswap', 'ledger.json')
    }

    It 'reads a missing ledger as empty' {
        $ledger = Read-SwapLedger -Path $ledgerPath
        $ledger['format'] | Should -Be 1
        $ledger['releases'].Count | Should -Be 0
        $ledger['history'].Count | Should -Be 0
    }

    It 'round-trips staged, active, retired and failed releases' {
        $ledger = New-SwapLedger
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId '1.0.0-a' -Version '1.0.0' -Digest ('a' * 64) -Binary 'app.exe' -At '2024-05-01T10:00:00Z'
        Add-SwapLedgerActivation -Ledger $ledger -ReleaseId '1.0.0-a' -PreviousReleaseId $null -By 'test' -At '2024-05-01T10:00:01Z'
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId '2.0.0-b' -Version '2.0.0' -Digest ('b' * 64) -Binary 'app.exe' -At '2024-05-02T10:00:00Z'
        Add-SwapLedgerActivation -Ledger $ledger -ReleaseId '2.0.0-b' -PreviousReleaseId '1.0.0-a' -By 'test' -At '2024-05-02T10:00:01Z'
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId '3.0.0-c' -Version '3.0.0' -Digest ('c' * 64) -Binary 'app.exe' -At '2024-05-03T10:00:00Z'
        Set-SwapLedgerState -Ledger $ledger -ReleaseId '3.0.0-c' -State failed -At '2024-05-03T10:00:05Z' | Should -BeTrue
        Write-SwapLedger -Path $ledgerPath -Ledger $ledger

        $again = Read-SwapLedger -Path $ledgerPath
        $again['releases']['1.0.0-a']['state'] | Should -Be 'retired'
        $again['releases']['1.0.0-a']['retired_at'] | Should -BeExactly '2024-05-02T10:00:01Z'
        $again['releases']['2.0.0-b']['state'] | Should -Be 'active'
        $again['releases']['2.0.0-b']['activated_by'] | Should -Be 'test'
        $again['releases']['3.0.0-c']['state'] | Should -Be 'failed'
        $again['releases']['3.0.0-c']['failed_at'] | Should -BeExactly '2024-05-03T10:00:05Z'
        $again['releases']['3.0.0-c']['activated_at'] | Should -BeNullOrEmpty
        @($again['releases'].Keys) | Should -Be @('1.0.0-a', '2.0.0-b', '3.0.0-c')
        $again['history'].Count | Should -Be 2
        $again['history'][1]['release_id'] | Should -Be '2.0.0-b'
        $again['history'][1]['from'] | Should -Be '1.0.0-a'
        $again['history'][0]['from'] | Should -BeNullOrEmpty

        # What the Linux side (json.load) sees: the documented keys, in the documented order.
        $raw = [System.IO.File]::ReadAllText($ledgerPath)
        $raw | Should -Match '"format":\s*1'
        $json = ConvertFrom-Json -InputObject $raw
        @($json.releases.'2.0.0-b'.PSObject.Properties.Name) | Should -Be @(
            'release_id', 'version', 'sha256', 'binary', 'state', 'staged_at', 'activated_at', 'retired_at', 'failed_at', 'activated_by')
        @($json.history[0].PSObject.Properties.Name) | Should -Be @('release_id', 'from', 'at', 'by')
        Get-ChildItem -LiteralPath (Split-Path -Path $ledgerPath) -Force -Filter '.ledger.json.tmp-*' | Should -BeNullOrEmpty
    }

    It 'reads a ledger in the Linux format, with an empty and a one-entry history' {
        $null = New-Item -ItemType Directory -Path (Split-Path -Path $ledgerPath)
        $linux = @'
{
  "format": 1,
  "releases": {
    "1.0.0-aaaaaaaaaaaa": {"release_id": "1.0.0-aaaaaaaaaaaa", "version": "1.0.0", "sha256": null, "binary": "app.exe",
      "state": "active", "staged_at": "2024-05-01T12:00:00Z", "activated_at": "2024-05-01T12:00:00Z",
      "retired_at": null, "failed_at": null, "activated_by": "alice@ctl:1"}
  },
  "history": [{"release_id": "1.0.0-aaaaaaaaaaaa", "from": null, "at": "2024-05-01T12:00:00Z", "by": "alice@ctl:1"}]
}
'@
        [System.IO.File]::WriteAllText($ledgerPath, $linux)
        $ledger = Read-SwapLedger -Path $ledgerPath
        $ledger['history'].Count | Should -Be 1
        # Timestamps stay strings even where ConvertFrom-Json makes DateTime of them (PowerShell 7).
        $ledger['releases']['1.0.0-aaaaaaaaaaaa']['staged_at'] | Should -BeExactly '2024-05-01T12:00:00Z'
        Write-SwapLedger -Path $ledgerPath -Ledger $ledger
        (ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($ledgerPath))).history.Count | Should -Be 1

        [System.IO.File]::WriteAllText($ledgerPath, '{"format": 1, "releases": {}, "history": []}')
        $empty = Read-SwapLedger -Path $ledgerPath
        Write-SwapLedger -Path $ledgerPath -Ledger $empty
        [System.IO.File]::ReadAllText($ledgerPath) | Should -Match '"history":\s*\[\s*\]'
    }

    It 'refuses <Name>' -TestCases @(
        @{ Name = 'invalid JSON'; Text = '{'; Message = '*not valid JSON*' }
        @{ Name = 'another format'; Text = '{"format": 2, "releases": {}, "history": []}'; Message = "*format '2' is not supported*" }
        @{ Name = 'a bad state'; Text = '{"format": 1, "releases": {"x": {"state": "weird"}}, "history": []}'; Message = "*entry for 'x' is malformed*" }
        @{ Name = 'a list of releases'; Text = '{"format": 1, "releases": [], "history": []}'; Message = '*expected*structure*' }
    ) {
        param ($Name, $Text, $Message)
        $null = New-Item -ItemType Directory -Path (Split-Path -Path $ledgerPath) -Force
        [System.IO.File]::WriteAllText($ledgerPath, $Text)
        { Read-SwapLedger -Path $ledgerPath } | Should -Throw -ExpectedMessage $Message
    }

    It 'refuses the same release id with another sha256' {
        $ledger = New-SwapLedger
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId 'r1' -Version '1' -Digest ('a' * 64) -Binary 'app.exe'
        Add-SwapLedgerStaged -Ledger $ledger -ReleaseId 'r1' -Version '1' -Digest ('a' * 64) -Binary 'app.exe' | Should -BeFalse
        { Add-SwapLedgerStaged -Ledger $ledger -ReleaseId 'r1' -Version '1' -Digest ('b' * 64) -Binary 'app.exe' } |
            Should -Throw -ExpectedMessage '*already has it with sha256*use a new release_id*'
    }

    It 'keeps exactly one active release and caps the history at 200' {
        $ledger = New-SwapLedger
        foreach ($i in 1..205) {
            Add-SwapLedgerActivation -Ledger $ledger -ReleaseId "r$($i % 3)" -PreviousReleaseId "r$(($i - 1) % 3)" -By 'test'
        }
        @(Get-SwapLedgerActive -Ledger $ledger) | Should -Be @('r1')
        $ledger['history'].Count | Should -Be 200
        Test-SwapLedgerNeedsActivation -Ledger $ledger -ReleaseId 'r1' | Should -BeFalse
        Test-SwapLedgerNeedsActivation -Ledger $ledger -ReleaseId 'r2' | Should -BeTrue
    }

    It 'finds a release by digest, the active one first' {
        $ledger = New-SwapLedger
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId 'old' -Digest ('a' * 64) -Binary 'app.exe'
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId 'same-bits' -Digest ('a' * 64) -Binary 'app.exe'
        Add-SwapLedgerActivation -Ledger $ledger -ReleaseId 'same-bits' -PreviousReleaseId $null
        Find-SwapLedgerRelease -Ledger $ledger -Digest ('a' * 64) | Should -Be 'same-bits'
        Find-SwapLedgerRelease -Ledger $ledger -Digest ('f' * 64) | Should -BeNullOrEmpty
        Find-SwapLedgerRelease -Ledger $ledger -Digest $null | Should -BeNullOrEmpty
    }
}

Describe 'Old copies and pruning' {
    BeforeEach {
        $dir = New-TestDir
        $exe = Join-Path -Path $dir -ChildPath 'app.exe'
        $ledger = New-SwapLedger
        $at = @{ r1 = '2024-05-01T00:00:00Z'; r2 = '2024-05-02T00:00:00Z'; r3 = '2024-05-03T00:00:00Z'; r4 = '2024-05-04T00:00:00Z'; bad = '2024-05-05T00:00:00Z' }
        foreach ($id in @('r3', 'r1', 'bad', 'r2', 'r4')) {
            # staged out of order on purpose: the order comes from staged_at
            $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $id -Digest ('a' * 64) -Binary 'app.exe' -At $at[$id]
        }
        $null = Set-SwapLedgerState -Ledger $ledger -ReleaseId 'bad' -State failed
        foreach ($name in @('app.exe', 'app.exe.old-r1', 'app.exe.old-r2', 'app.exe.old-r2~2', 'app.exe.old-r3', 'app.exe.failed-bad',
                'app.exe.old-unknown-0123456789ab', 'app.exe.old-..bad', 'app.exe.old-r1~x', 'app.exe.new', 'other.exe.old-r1')) {
            [System.IO.File]::WriteAllText((Join-Path -Path $dir -ChildPath $name), $name)
        }
        # file times that would suggest the opposite order, to prove they are not used
        (Get-Item -LiteralPath (Join-Path -Path $dir -ChildPath 'app.exe.old-r1')).LastWriteTime = (Get-Date).AddDays(1)
    }

    It 'lists the copies it can parse' {
        $copies = @(Get-BinaryCopy -Path $exe)
        @($copies | ForEach-Object { $_.Name } | Sort-Object) | Should -Be @(
            'app.exe.failed-bad', 'app.exe.old-r1', 'app.exe.old-r2', 'app.exe.old-r2~2', 'app.exe.old-r3', 'app.exe.old-unknown-0123456789ab')
        ($copies | Where-Object { $_.Name -eq 'app.exe.old-r2~2' }).Sequence | Should -Be 2
        ($copies | Where-Object { $_.Name -eq 'app.exe.failed-bad' }).Kind | Should -Be 'failed'
    }

    It 'removes failed copies first, then the oldest by staged_at, never unknown ones' {
        $copies = @(Get-BinaryCopy -Path $exe)
        $doomed = @(Select-OldCopiesToPrune -Copies $copies -Ledger $ledger -Keep 2)
        @($doomed | ForEach-Object { $_.Name }) | Should -Be @('app.exe.failed-bad', 'app.exe.old-r1', 'app.exe.old-r2')
    }

    It 'never selects a protected copy, which still counts toward keep' {
        $copies = @(Get-BinaryCopy -Path $exe)
        $protect = Join-Path -Path $dir -ChildPath 'app.exe.old-r1'
        $doomed = @(Select-OldCopiesToPrune -Copies $copies -Ledger $ledger -Keep 1 -Protect @($protect))
        @($doomed | ForEach-Object { $_.Name }) | Should -Be @('app.exe.failed-bad', 'app.exe.old-r2', 'app.exe.old-r2~2', 'app.exe.old-r3')
    }

    It 'selects nothing when there are at most keep copies' {
        @(Select-OldCopiesToPrune -Copies @(Get-BinaryCopy -Path $exe) -Ledger $ledger -Keep 5).Count | Should -Be 0
        @(Select-OldCopiesToPrune -Copies @() -Ledger $ledger -Keep 1).Count | Should -Be 0
    }

    It 'refuses keep < 1' {
        { Select-OldCopiesToPrune -Copies @() -Ledger $ledger -Keep 0 } | Should -Throw -ExpectedMessage '*keep must be an integer >= 1*'
    }

    It 'makes unique names with a ~n suffix' {
        Get-UniquePath -Path (Join-Path -Path $dir -ChildPath 'app.exe.old-r9') | Should -Be (Join-Path -Path $dir -ChildPath 'app.exe.old-r9')
        Get-UniquePath -Path (Join-Path -Path $dir -ChildPath 'app.exe.old-r2') | Should -Be (Join-Path -Path $dir -ChildPath 'app.exe.old-r2~3')
    }
}

Describe 'Lock' {
    It 'is created exclusively, names its holder and is removed by its owner only' {
        $lock = [System.IO.Path]::Combine((New-TestDir), '.hotswap', 'lock')
        Enter-SwapLock -Path $lock -Owner 'deploy A'
        $lock | Should -Exist
        (Read-SwapLock -Path $lock)['owner'] | Should -Be 'deploy A'
        { Enter-SwapLock -Path $lock -Owner 'deploy B' } | Should -Throw -ExpectedMessage "*held by 'deploy A'*"
        Exit-SwapLock -Path $lock -Owner 'deploy B'
        $lock | Should -Exist
        Exit-SwapLock -Path $lock -Owner 'deploy A'
        $lock | Should -Not -Exist
    }
}

Describe 'Health probe' {
    It 'reads the version from <Body>' -TestCases @(
        @{ Body = '{"version": "1.2.3", "status": "ok"}'; Version = '1.2.3' }
        @{ Body = "  1.2.3`n"; Version = '1.2.3' }
        @{ Body = '1.2'; Version = '1.2' }
        @{ Body = '{"status": "ok"}'; Version = $null }
        @{ Body = '{not json'; Version = '{not json' }
    ) {
        param ($Body, $Version)
        Should -ActualValue (Get-HealthBodyVersion -Body $Body) -Be $Version
    }

    It 'retries until it passes' {
        $calls = @{ n = 0 }
        $request = { param ($Url, $ValidateCerts, $TimeoutSeconds) $calls.n++; if ($calls.n -lt 3) { @{ StatusCode = 503; Body = '' } } else { @{ StatusCode = 200; Body = '{"version":"2"}' } } }.GetNewClosure()
        $probe = Invoke-HealthProbe -Url 'http://127.0.0.1/h' -ExpectedVersion '2' -Retries 5 -Interval 1 -Request $request -Sleep { param ($Seconds) }
        $probe.Verdict | Should -Be 'pass'
        $probe.Attempts | Should -Be 3
    }

    It 'fails on a wrong version after all attempts' {
        $probe = Invoke-HealthProbe -Url 'http://127.0.0.1/h' -ExpectedVersion '2' -Retries 2 -Interval 0 -Sleep { param ($Seconds) } `
            -Request { param ($Url, $ValidateCerts, $TimeoutSeconds) @{ StatusCode = 200; Body = '{"version":"1"}' } }
        $probe.Verdict | Should -Be 'fail'
        $probe.Attempts | Should -Be 3
        $probe.Reason | Should -BeLike "*reports version '1', expected '2'*"
    }

    It 'is inconclusive when nothing answers, and hides credentials' {
        $probe = Invoke-HealthProbe -Url ('http://{0}@127.0.0.1/h' -f 'user:secret') -Retries 1 -Interval 0 -Sleep { param ($Seconds) } `
            -Request { param ($Url, $ValidateCerts, $TimeoutSeconds) throw (New-Object -TypeName System.Net.WebException -ArgumentList 'Unable to connect to the remote server') }
        $probe.Verdict | Should -Be 'inconclusive'
        $probe.Reason | Should -BeLike '*could not be reached*Unable to connect*'
        $probe.Reason | Should -Not -BeLike '*secret*'
    }
}

Describe 'Invoke-BinarySwap' {
    BeforeEach {
        $dir = New-TestDir
        $exe = Join-Path -Path $dir -ChildPath 'app.exe'
        $oldBytes = New-PeBytes -Payload 'version 1.0.0'
        $newBytes = New-PeBytes -Payload 'version 2.0.0'
        $oldSha = Get-BytesSha256 $oldBytes
        $newSha = Get-BytesSha256 $newBytes
        [System.IO.File]::WriteAllBytes($exe, $oldBytes)
        $src = Join-Path -Path (New-TestDir) -ChildPath 'pushed.exe'
        [System.IO.File]::WriteAllBytes($src, $newBytes)
        Set-LiveRelease -Dir $dir -ReleaseId '1.0.0-old' -Bytes $oldBytes -Version '1.0.0'
        $ledgerPath = [System.IO.Path]::Combine($dir, '.hotswap', 'ledger.json')
        $state = @{
            Exe = $exe
            Status = 'Running'
            StartMode = 'Auto'
            Missing = $false
            FailStop = $false
            FailStartSha = $null
            UnhealthySha = $null
            UnreachableSha = $null
            ReportVersion = $null
            Versions = @{ $oldSha = '1.0.0'; $newSha = '2.0.0' }
            Downloads = @{}
            Events = (New-Object -TypeName System.Collections.ArrayList)
        }
        $fake = New-FakeService -State $state
    }

    Context 'success' {
        It 'swaps, keeps the old exe under its release id and records the ledger' {
            $r = Invoke-TestSwap
            $r['failed'] | Should -BeNullOrEmpty
            $r.changed | Should -BeTrue
            $r.swapped | Should -BeTrue
            $r.previous_release | Should -Be '1.0.0-old'
            $r.current_release | Should -Be '2.0.0-new'
            $r.sha256 | Should -Be $newSha
            $r.health | Should -Be 'pass'
            $r.host_arch | Should -Be 'x86_64'
            $r.backup_path | Should -Be "$exe.old-1.0.0-old"
            $r.staged_path | Should -Be "$exe.new"
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $newSha
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes("$exe.old-1.0.0-old")) | Should -Be $oldSha
            "$exe.new" | Should -Not -Exist
            [System.IO.Path]::Combine($dir, '.hotswap', 'lock') | Should -Not -Exist
            $src | Should -Exist   # src is copied, not moved
            @($state.Events) | Should -Be @('stop', 'start:2.0.0', 'health:2.0.0')
            $state.Status | Should -Be 'Running'

            $ledger = Read-SwapLedger -Path $ledgerPath
            $ledger['releases']['2.0.0-new']['state'] | Should -Be 'active'
            $ledger['releases']['2.0.0-new']['sha256'] | Should -Be $newSha
            $ledger['releases']['2.0.0-new']['version'] | Should -Be '2.0.0'
            $ledger['releases']['2.0.0-new']['binary'] | Should -Be 'app.exe'
            $ledger['releases']['1.0.0-old']['state'] | Should -Be 'retired'
            $last = $ledger['history'][$ledger['history'].Count - 1]
            $last['release_id'] | Should -Be '2.0.0-new'
            $last['from'] | Should -Be '1.0.0-old'
        }

        It 'retries the health probe while the service warms up' {
            $calls = @{ n = 0 }
            $extra = @{
                HealthRequest = { param ($Url, $ValidateCerts, $TimeoutSeconds) $calls.n++; if ($calls.n -lt 3) { throw (New-Object System.Net.WebException 'refused') }; @{ StatusCode = 200; Body = '{"version": "2.0.0"}' } }.GetNewClosure()
            }
            $r = Invoke-TestSwap -Extra $extra
            $r.swapped | Should -BeTrue
            $r.health | Should -Be 'pass'
            @($state.Events | Where-Object { $_ -like 'sleep:*' }).Count | Should -Be 2
        }

        It 'downloads from url (pull mode)' {
            $state.Downloads['https://127.0.0.1:1/app.exe'] = $src
            $r = Invoke-TestSwap -Extra @{ Src = $null; Url = 'https://127.0.0.1:1/app.exe' }
            $r.swapped | Should -BeTrue
            $state.Events[0] | Should -Be 'download:https://127.0.0.1:1/app.exe'
        }

        It 'stages in staging_dir on the same volume' {
            $staging = New-TestDir
            $r = Invoke-TestSwap -Extra @{ StagingDir = $staging }
            $r.swapped | Should -BeTrue
            $r.staged_path | Should -Be (Join-Path -Path $staging -ChildPath 'app.exe.new')
        }

        It 'keeps a hand-installed exe as .old-unknown-<sha12> and warns' {
            Remove-Item -LiteralPath $ledgerPath
            $r = Invoke-TestSwap
            $r.swapped | Should -BeTrue
            $r.previous_release | Should -BeNullOrEmpty
            $r.backup_path | Should -Be "$exe.old-unknown-$($oldSha.Substring(0, 12))"
            $r.warnings | Should -Not -BeNullOrEmpty
            (Read-SwapLedger -Path $ledgerPath)['history'][0]['from'] | Should -BeNullOrEmpty
        }

        It 'installs when there is no live exe yet' {
            Remove-Item -LiteralPath $exe
            $r = Invoke-TestSwap
            $r.swapped | Should -BeTrue
            $r.backup_path | Should -BeNullOrEmpty
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $newSha
        }

        It 'prunes old copies beyond keep by ledger order and forgets their releases' {
            $v3Bytes = New-PeBytes -Payload 'version 3.0.0'
            $v3Sha = Get-BytesSha256 $v3Bytes
            $state.Versions[$v3Sha] = '3.0.0'
            $r2 = Invoke-TestSwap -Extra @{ Keep = 1 }
            $r2.swapped | Should -BeTrue
            [System.IO.File]::WriteAllBytes($src, $v3Bytes)
            $r3 = Invoke-TestSwap -Extra @{ Keep = 1; ReleaseId = '3.0.0-v3'; Version = '3.0.0'; ExpectedVersion = '3.0.0'; Checksum = "sha256:$v3Sha" }
            $r3.swapped | Should -BeTrue
            $r3.backup_path | Should -Be "$exe.old-2.0.0-new"
            @($r3.pruned) | Should -Be @("$exe.old-1.0.0-old")
            "$exe.old-1.0.0-old" | Should -Not -Exist
            "$exe.old-2.0.0-new" | Should -Exist
            $ledger = Read-SwapLedger -Path $ledgerPath
            @($ledger['releases'].Keys) | Should -Be @('2.0.0-new', '3.0.0-v3')
            $ledger['history'].Count | Should -Be 3   # history is kept
        }

        It 'names the copy uniquely when the name is taken' {
            [System.IO.File]::WriteAllText("$exe.old-1.0.0-old", 'left over')
            $r = Invoke-TestSwap
            $r.swapped | Should -BeTrue
            $r.backup_path | Should -Be "$exe.old-1.0.0-old~2"
        }
    }

    Context 'nothing to do' {
        It 'changes nothing when the live exe has the digest already' {
            [System.IO.File]::WriteAllBytes($exe, $newBytes)
            Set-LiveRelease -Dir $dir -ReleaseId '2.0.0-new' -Bytes $newBytes -Version '2.0.0'
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestSwap
            $r['failed'] | Should -BeNullOrEmpty
            $r.changed | Should -BeFalse
            $r.swapped | Should -BeFalse
            $r.current_release | Should -Be '2.0.0-new'
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'only fixes the ledger when it does not record the live release' {
            [System.IO.File]::WriteAllBytes($exe, $newBytes)
            $r = Invoke-TestSwap -Extra @{ Src = $null }
            $r.changed | Should -BeTrue
            $r.swapped | Should -BeFalse
            @($state.Events).Count | Should -Be 0
            $ledger = Read-SwapLedger -Path $ledgerPath
            $ledger['releases']['2.0.0-new']['state'] | Should -Be 'active'
            $ledger['releases']['1.0.0-old']['state'] | Should -Be 'retired'
        }

        It 'fails the verify-only probe with not_staged and host_arch, changing nothing' {
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestSwap -Extra @{ Src = $null; HostArch = 'aarch64' }
            $r.failed | Should -BeTrue
            $r.reason | Should -Be 'not_staged'
            $r.host_arch | Should -Be 'aarch64'
            $r.current_release | Should -Be '1.0.0-old'
            $r.changed | Should -BeFalse
            $r.msg | Should -BeLike "*has sha256 $oldSha, not $newSha*"
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'only reports in check mode' {
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestSwap -Extra @{ CheckMode = $true; Keep = 1 }
            $r['failed'] | Should -BeNullOrEmpty
            $r.changed | Should -BeTrue
            $r.swapped | Should -BeFalse
            $r.would_swap | Should -BeTrue
            $r.backup_path | Should -Be "$exe.old-1.0.0-old"
            ($r.steps -join "`n") | Should -BeLike "*rename $exe to $exe.old-1.0.0-old*"
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }
    }

    Context 'bad input: nothing is changed' {
        It 'refuses <Name>' -TestCases @(
            @{ Name = 'a wrong checksum'; Extra = @{ Checksum = 'sha256:' + ('0' * 64) }; Message = '*its sha256 is*but checksum says*'; Step = 'verify' }
            @{ Name = 'an x86 exe on x64'; Extra = @{ HostArch = 'x86_64' }; Bytes = 'x86'; Message = '*windows/i386 PE executable but the host is windows/x86_64*'; Step = 'verify' }
            @{ Name = 'an x64 exe on ARM64'; Extra = @{ HostArch = 'aarch64' }; Message = '*windows/x86_64 PE executable but the host is windows/aarch64*'; Step = 'verify' }
            @{ Name = 'keep 0'; Extra = @{ Keep = 0 }; Message = '*keep option: it must be an integer >= 1*' }
            @{ Name = 'an ftp url'; Extra = @{ Src = $null; Url = 'ftp://127.0.0.1/app.exe' }; Message = '*not an http:// or https:// URL*' }
            @{ Name = 'src and url'; Extra = @{ Url = 'https://127.0.0.1:1/app.exe' }; Message = '*mutually exclusive*' }
            @{ Name = 'a bad release id'; Extra = @{ ReleaseId = '../x' }; Message = "*checking release_id*" }
            @{ Name = 'a bad checksum'; Extra = @{ Checksum = 'md5:abc' }; Message = "*algorithm 'md5' is not supported*" }
            @{ Name = 'expected_version without health_url'; Extra = @{ HealthUrl = $null }; Message = '*expected_version: it needs health_url*' }
            @{ Name = 'a missing src'; Extra = @{ Src = 'Z:\nowhere\app.exe' }; Message = '*does not exist on the host*' }
        ) {
            param ($Name, $Extra, $Message, $Step, $Bytes)
            if ($Bytes -eq 'x86') {
                $x86 = New-PeBytes -Machine 0x014C -Payload 'x86 build'
                [System.IO.File]::WriteAllBytes($src, $x86)
                $Extra['Checksum'] = "sha256:$(Get-BytesSha256 $x86)"
            }
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestSwap -Extra $Extra
            $r.failed | Should -BeTrue
            $r.msg | Should -BeLike $Message
            $r.swapped | Should -BeFalse
            $r.changed | Should -BeFalse
            if ($Step) {
                $r.failed_step | Should -Be $Step
            }
            @($state.Events | Where-Object { $_ -notlike 'download:*' }).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'refuses a missing service' {
            $state.Missing = $true
            $r = Invoke-TestSwap
            $r.msg | Should -BeLike "*no Windows service named 'app'*"
        }

        It 'refuses a disabled service' {
            $state.StartMode = 'Disabled'
            (Invoke-TestSwap).msg | Should -BeLike "*service 'app' is disabled*"
        }

        It 'refuses a staging_dir on another volume' {
            $staging = New-TestDir
            $r = Invoke-TestSwap -Extra @{ StagingDir = $staging; MountPoints = @([System.IO.Path]::GetPathRoot($dir), $staging) }
            $r.failed | Should -BeTrue
            $r.msg | Should -BeLike '*is on another volume than*renames files only within a volume*'
        }

        It 'refuses a release id the ledger has with another sha256' {
            $other = New-PeBytes -Payload 'another build'
            $ledger = Read-SwapLedger -Path $ledgerPath
            $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId '2.0.0-new' -Digest (Get-BytesSha256 $other) -Binary 'app.exe'
            Write-SwapLedger -Path $ledgerPath -Ledger $ledger
            (Invoke-TestSwap).msg | Should -BeLike '*already has release 2.0.0-new with sha256*'
        }

        It 'refuses while another run holds the lock, naming it' {
            Enter-SwapLock -Path ([System.IO.Path]::Combine($dir, '.hotswap', 'lock')) -Owner 'the other deploy'
            $r = Invoke-TestSwap
            $r.failed | Should -BeTrue
            $r.msg | Should -BeLike "*held by 'the other deploy'*"
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
            @($state.Events).Count | Should -Be 0
        }

        It 'refuses to guess after an interrupted swap (no live exe, old copies)' {
            Rename-Item -LiteralPath $exe -NewName 'app.exe.old-1.0.0-old'
            (Invoke-TestSwap).msg | Should -BeLike '*earlier swap may have been interrupted*'
        }
    }

    Context 'failure after the first rename: the old binary is restored' {
        It 'restores when the new binary does not start' {
            $state.FailStartSha = $newSha
            $r = Invoke-TestSwap
            $r.failed | Should -BeTrue
            $r.failed_step | Should -Be 'start'
            $r.swapped | Should -BeFalse
            $r.changed | Should -BeTrue
            $r.restored | Should -BeTrue
            $r.current_release | Should -Be '1.0.0-old'
            $r.failed_path | Should -Be "$exe.failed-2.0.0-new"
            $r.msg | Should -BeLike '*start failed*previous binary was restored*started again*'
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes("$exe.failed-2.0.0-new")) | Should -Be $newSha
            "$exe.old-1.0.0-old" | Should -Not -Exist
            @($state.Events) | Should -Be @('stop', 'start:2.0.0', 'stop', 'start:1.0.0')
            $state.Status | Should -Be 'Running'
            [System.IO.Path]::Combine($dir, '.hotswap', 'lock') | Should -Not -Exist
            $ledger = Read-SwapLedger -Path $ledgerPath
            $ledger['releases']['2.0.0-new']['state'] | Should -Be 'failed'
            $ledger['releases']['1.0.0-old']['state'] | Should -Be 'active'
        }

        It 'restores when the health probe fails' {
            $state.UnhealthySha = $newSha
            $r = Invoke-TestSwap
            $r.failed | Should -BeTrue
            $r.failed_step | Should -Be 'health'
            $r.health | Should -Be 'fail'
            $r.restored | Should -BeTrue
            $r.msg | Should -BeLike '*health failed*answered HTTP 503*previous binary was restored*'
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
            $state.Events[$state.Events.Count - 1] | Should -Be 'start:1.0.0'
        }

        It 'restores when the new binary reports another version' {
            $state.ReportVersion = '1.9.9'
            $r = Invoke-TestSwap
            $r.failed_step | Should -Be 'health'
            $r.health | Should -Be 'fail'
            $r.msg | Should -BeLike "*reports version '1.9.9', expected '2.0.0'*"
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
        }

        It 'restores when the health probe is inconclusive' {
            $state.UnreachableSha = $newSha
            $r = Invoke-TestSwap
            $r.failed_step | Should -Be 'health'
            $r.health | Should -Be 'inconclusive'
            $r.restored | Should -BeTrue
        }

        It 'says so when the old binary does not start again either' {
            $state.UnhealthySha = $newSha
            $state.FailStartSha = $oldSha
            $r = Invoke-TestSwap
            $r.restored | Should -BeTrue
            $r.msg | Should -BeLike '*did NOT start again*'
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
        }

        It 'starts the old binary also when the service was stopped before' {
            $state.Status = 'Stopped'
            $state.FailStartSha = $newSha
            $r = Invoke-TestSwap
            $r.restored | Should -BeTrue
            $r.msg | Should -BeLike '*started again with it*'
            @($state.Events) | Should -Be @('stop', 'start:2.0.0', 'stop', 'start:1.0.0')
            $state.Status | Should -Be 'Running'
        }
    }

    Context 'failure before the first rename' {
        It 'starts the service again when it does not stop, and renames nothing' {
            $state.FailStop = $true
            $r = Invoke-TestSwap
            $r.failed | Should -BeTrue
            $r.failed_step | Should -Be 'stop'
            $r.current_release | Should -Be '1.0.0-old'
            $r.msg | Should -BeLike '*Nothing was renamed*started again*'
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
            "$exe.old-1.0.0-old" | Should -Not -Exist
            @($state.Events) | Should -Be @('stop', 'start:1.0.0')
        }
    }
}

Describe 'Restore-Binary' {
    It 'moves the bad exe away, puts the old one back and starts it' {
        $dir = New-TestDir
        $exe = Join-Path -Path $dir -ChildPath 'app.exe'
        [System.IO.File]::WriteAllText($exe, 'new')
        [System.IO.File]::WriteAllText("$exe.old-r1", 'old')
        [System.IO.File]::WriteAllText("$exe.failed-r2", 'an earlier failure')
        $events = New-Object -TypeName System.Collections.ArrayList
        $r = Restore-Binary -Path $exe -BackupPath "$exe.old-r1" -FailedPath "$exe.failed-r2" -Service 'app' -Start $true `
            -StopService { param ($Name, $TimeoutSeconds) $null = $events.Add('stop') }.GetNewClosure() `
            -StartService { param ($Name, $TimeoutSeconds, $Dependents) $null = $events.Add('start') }.GetNewClosure()
        $r.restored | Should -BeTrue
        $r.started | Should -BeTrue
        $r.failed_path | Should -Be "$exe.failed-r2~2"
        [System.IO.File]::ReadAllText($exe) | Should -Be 'old'
        [System.IO.File]::ReadAllText("$exe.failed-r2~2") | Should -Be 'new'
        @($events) | Should -Be @('stop', 'start')
    }

    It 'reports a copy that cannot be put back' {
        $dir = New-TestDir
        $exe = Join-Path -Path $dir -ChildPath 'app.exe'
        [System.IO.File]::WriteAllText($exe, 'new')
        $r = Restore-Binary -Path $exe -BackupPath "$exe.old-gone" -FailedPath "$exe.failed-r2" -Service 'app' `
            -StopService { param ($Name, $TimeoutSeconds) } -StartService { throw 'must not be called' }
        $r.restored | Should -BeFalse
        $r.started | Should -BeFalse
        ($r.problems -join ' ') | Should -BeLike '*renaming*back*failed*'
    }
}

Describe 'Rollback helpers' {
    It 'picks the .old copy of a release before a .failed one, then the lowest ~n' {
        $copies = @(
            [PSCustomObject]@{ Path = 'x.failed-r1'; Kind = 'failed'; ReleaseId = 'r1'; Sequence = 1 }
            [PSCustomObject]@{ Path = 'x.old-r1~2'; Kind = 'old'; ReleaseId = 'r1'; Sequence = 2 }
            [PSCustomObject]@{ Path = 'x.old-r1'; Kind = 'old'; ReleaseId = 'r1'; Sequence = 1 }
            [PSCustomObject]@{ Path = 'x.old-R1'; Kind = 'old'; ReleaseId = 'R1'; Sequence = 1 }
        )
        (Select-KeptCopy -Copies $copies -ReleaseId 'r1').Path | Should -Be 'x.old-r1'
        (Select-KeptCopy -Copies $copies[0..1] -ReleaseId 'r1').Path | Should -Be 'x.old-r1~2'
        (Select-KeptCopy -Copies $copies[0] -ReleaseId 'r1').Path | Should -Be 'x.failed-r1'
        Select-KeptCopy -Copies $copies -ReleaseId 'r2' | Should -BeNullOrEmpty
        Select-KeptCopy -Copies @() -ReleaseId 'r1' | Should -BeNullOrEmpty
    }

    It 'chooses the previous good release from the history: not current, not failed, kept' {
        $ledger = New-SwapLedger
        foreach ($id in @('r1', 'r2', 'r3', 'r4')) {
            $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $id -Digest ('a' * 64) -Binary 'app.exe'
        }
        # activated r1, r2, r3, r1 again, then r4 (current)
        foreach ($pair in @(@('r1', $null), @('r2', 'r1'), @('r3', 'r2'), @('r1', 'r3'), @('r4', 'r1'))) {
            Add-SwapLedgerActivation -Ledger $ledger -ReleaseId $pair[0] -PreviousReleaseId $pair[1] -By 'test'
        }
        Select-PreviousGoodRelease -Ledger $ledger -CurrentReleaseId 'r4' -Present @('r1', 'r2', 'r3') | Should -Be 'r1'
        # not kept any more: the next newest activation
        Select-PreviousGoodRelease -Ledger $ledger -CurrentReleaseId 'r4' -Present @('r2', 'r3') | Should -Be 'r3'
        $null = Set-SwapLedgerState -Ledger $ledger -ReleaseId 'r3' -State failed
        Select-PreviousGoodRelease -Ledger $ledger -CurrentReleaseId 'r4' -Present @('r2', 'r3') | Should -Be 'r2'
        # dropped from the ledger (history kept): skipped
        $ledger['releases'].Remove('r2')
        Select-PreviousGoodRelease -Ledger $ledger -CurrentReleaseId 'r4' -Present @('r2', 'r3') | Should -BeNullOrEmpty
        Select-PreviousGoodRelease -Ledger (New-SwapLedger) -CurrentReleaseId $null -Present @() | Should -BeNullOrEmpty
    }

    It 'resolves the digest of the target from the ledger and refuses <Name>' -TestCases @(
        @{ Name = 'an unknown release'; Rid = 'r9'; Digest = $null; Message = '*has no release r9 (it has r1, r2)*' }
        @{ Name = 'a release without sha256'; Rid = 'r2'; Digest = $null; Message = '*records no sha256 for release r2*' }
        @{ Name = 'a checksum that disagrees'; Rid = 'r1'; Digest = ('f' * 64); Message = "*checksum says $('f' * 64) but the ledger*" }
    ) {
        param ($Name, $Rid, $Digest, $Message)
        $ledger = New-SwapLedger
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId 'r1' -Digest ('a' * 64) -Binary 'app.exe'
        Add-SwapLedgerActivation -Ledger $ledger -ReleaseId 'r2' -PreviousReleaseId 'r1'
        $copies = @([PSCustomObject]@{ Path = 'app.exe.old-r1'; Kind = 'old'; ReleaseId = 'r1'; Sequence = 1 })
        $ok = Resolve-RollbackTarget -Ledger $ledger -Copies $copies -ReleaseId 'r1' -Digest $null -LedgerPath 'l.json' -Path 'app.exe' -What 'test'
        $ok.Digest | Should -Be ('a' * 64)
        $ok.Copy.Path | Should -Be 'app.exe.old-r1'
        { Resolve-RollbackTarget -Ledger $ledger -Copies $copies -ReleaseId $Rid -Digest $Digest -LedgerPath 'l.json' -Path 'app.exe' -What 'test' } |
            Should -Throw -ExpectedMessage $Message
    }

    It 'says who holds the lock' {
        $lock = [System.IO.Path]::Combine((New-TestDir), '.hotswap', 'lock')
        Assert-SwapLockFree -Path $lock -What 'test'
        Enter-SwapLock -Path $lock -Owner 'deploy A'
        { Assert-SwapLockFree -Path $lock -What 'test' } | Should -Throw -ExpectedMessage "*held by 'deploy A'*"
    }
}

Describe 'Query and rollback' {
    BeforeAll {
        Function Invoke-TestRollback {
            # Invoke-BinarySwap -Operation rollback (or query) with the fake service; Extra overrides.
            param ([hashtable]$Extra = @{})
            $params = @{
                Path = $exe
                Operation = 'rollback'
                Service = 'app'
                ReleaseId = '1.0.0-old'
                PreviousState = 'failed'
                ActivatedBy = 'rollback test'
                HostArch = 'x86_64'
                MountPoints = @()
                HealthUrl = 'http://127.0.0.1:8080/healthz'
                ExpectedVersion = '1.0.0'
                HealthRetries = 2
                HealthInterval = 1
            }
            foreach ($key in $fake.Keys) {
                $params[$key] = $fake[$key]
            }
            foreach ($key in $Extra.Keys) {
                $params[$key] = $Extra[$key]
            }
            Invoke-BinarySwap @params
        }
    }

    BeforeEach {
        # 1.0.0-old was live, then a swap made 2.0.0-new live and kept app.exe.old-1.0.0-old.
        $dir = New-TestDir
        $exe = Join-Path -Path $dir -ChildPath 'app.exe'
        $oldBytes = New-PeBytes -Payload 'version 1.0.0'
        $newBytes = New-PeBytes -Payload 'version 2.0.0'
        $oldSha = Get-BytesSha256 $oldBytes
        $newSha = Get-BytesSha256 $newBytes
        [System.IO.File]::WriteAllBytes($exe, $oldBytes)
        $src = Join-Path -Path (New-TestDir) -ChildPath 'pushed.exe'
        [System.IO.File]::WriteAllBytes($src, $newBytes)
        Set-LiveRelease -Dir $dir -ReleaseId '1.0.0-old' -Bytes $oldBytes -Version '1.0.0'
        $ledgerPath = [System.IO.Path]::Combine($dir, '.hotswap', 'ledger.json')
        $state = @{
            Exe = $exe; Status = 'Running'; StartMode = 'Auto'; Missing = $false; FailStop = $false; FailStartSha = $null
            UnhealthySha = $null; UnreachableSha = $null; ReportVersion = $null
            Versions = @{ $oldSha = '1.0.0'; $newSha = '2.0.0' }; Downloads = @{}
            Events = (New-Object -TypeName System.Collections.ArrayList)
        }
        $fake = New-FakeService -State $state
        (Invoke-TestSwap).swapped | Should -BeTrue
        $state.Events.Clear()
    }

    Context 'query' {
        It 'reports the live release, the previous good one and the kept copies, changing nothing' {
            [System.IO.File]::WriteAllText("$exe.old-unknown-0123456789ab", 'by hand')
            $before = Get-DirListing -Dir $dir
            $q = Invoke-TestRollback -Extra @{ Operation = 'query'; ReleaseId = $null }
            $q['failed'] | Should -BeNullOrEmpty
            $q.changed | Should -BeFalse
            $q.current | Should -Be '2.0.0-new'
            $q.previous_good | Should -Be '1.0.0-old'
            $q.live_sha256 | Should -Be $newSha
            $q.ledger_path | Should -Be $ledgerPath
            $q.lock | Should -BeNullOrEmpty
            @($q.problems).Count | Should -Be 0
            @($q.releases | ForEach-Object { $_['release_id'] }) | Should -Be @('1.0.0-old', '2.0.0-new', 'unknown-0123456789ab')
            $old = $q.releases[0]
            $old['present'] | Should -BeTrue
            $old['path'] | Should -Be "$exe.old-1.0.0-old"
            $old['version'] | Should -Be '1.0.0'
            $old['sha256'] | Should -Be $oldSha
            $old['state'] | Should -Be 'retired'
            $q.releases[1]['path'] | Should -Be $exe
            $q.releases[2]['state'] | Should -Be 'unknown'
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'reports a missing service, an interrupted swap and the lock holder as problems' {
            $state.Missing = $true
            Rename-Item -LiteralPath $exe -NewName 'app.exe.old-2.0.0-new'
            Enter-SwapLock -Path ([System.IO.Path]::Combine($dir, '.hotswap', 'lock')) -Owner 'the other deploy'
            $q = Invoke-TestRollback -Extra @{ Operation = 'query'; ReleaseId = $null }
            $q.current | Should -BeNullOrEmpty
            ($q.problems -join "`n") | Should -BeLike "*no Windows service named 'app'*"
            ($q.problems -join "`n") | Should -BeLike '*earlier swap may have been interrupted*'
            $q.lock['owner'] | Should -Be 'the other deploy'
        }

        It 'finds nothing where nothing is deployed' {
            $q = Invoke-TestRollback -Extra @{ Operation = 'query'; Path = (Join-Path -Path $dir -ChildPath 'none\app.exe') }
            $q['failed'] | Should -BeNullOrEmpty
            @($q.releases).Count | Should -Be 0
            $q.previous_good | Should -BeNullOrEmpty
        }

        It 'refuses a checksum and a relative path' {
            (Invoke-TestRollback -Extra @{ Operation = 'query'; Checksum = "sha256:$oldSha" }).msg | Should -BeLike '*not used by operation=query*'
            (Invoke-TestRollback -Extra @{ Operation = 'query'; Path = 'app.exe' }).msg | Should -BeLike '*is not the absolute path of a file*'
        }
    }

    Context 'rollback' {
        It 'renames the kept copy back, keeps the live exe and marks it failed' {
            $r = Invoke-TestRollback
            $r['failed'] | Should -BeNullOrEmpty
            $r.changed | Should -BeTrue
            $r.swapped | Should -BeTrue
            $r.previous_release | Should -Be '2.0.0-new'
            $r.current_release | Should -Be '1.0.0-old'
            $r.sha256 | Should -Be $oldSha
            $r.backup_path | Should -Be "$exe.old-2.0.0-new"
            $r.staged_path | Should -Be "$exe.old-1.0.0-old"
            $r.health | Should -Be 'pass'
            @($r.pruned).Count | Should -Be 0
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $oldSha
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes("$exe.old-2.0.0-new")) | Should -Be $newSha
            "$exe.old-1.0.0-old" | Should -Not -Exist
            "$exe.new" | Should -Not -Exist
            [System.IO.Path]::Combine($dir, '.hotswap', 'lock') | Should -Not -Exist
            @($state.Events) | Should -Be @('stop', 'start:1.0.0', 'health:1.0.0')
            $ledger = Read-SwapLedger -Path $ledgerPath
            $ledger['releases']['1.0.0-old']['state'] | Should -Be 'active'
            $ledger['releases']['1.0.0-old']['activated_by'] | Should -Be 'rollback test'
            $ledger['releases']['2.0.0-new']['state'] | Should -Be 'failed'
            $last = $ledger['history'][$ledger['history'].Count - 1]
            $last['release_id'] | Should -Be '1.0.0-old'
            $last['from'] | Should -Be '2.0.0-new'
            # and the host now offers no previous good release (2.0.0-new failed)
            (Invoke-TestRollback -Extra @{ Operation = 'query'; ReleaseId = $null }).previous_good | Should -BeNullOrEmpty
        }

        It 'retires the release rolled back from with previous_state retired' {
            $r = Invoke-TestRollback -Extra @{ PreviousState = 'retired' }
            $r.swapped | Should -BeTrue
            (Read-SwapLedger -Path $ledgerPath)['releases']['2.0.0-new']['state'] | Should -Be 'retired'
        }

        It 'changes nothing when the target is live already' {
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestRollback -Extra @{ ReleaseId = '2.0.0-new'; ExpectedVersion = '2.0.0' }
            $r['failed'] | Should -BeNullOrEmpty
            $r.changed | Should -BeFalse
            $r.swapped | Should -BeFalse
            $r.current_release | Should -Be '2.0.0-new'
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'only reports in check mode' {
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestRollback -Extra @{ CheckMode = $true }
            $r['failed'] | Should -BeNullOrEmpty
            $r.would_swap | Should -BeTrue
            ($r.steps -join "`n") | Should -BeLike "*rename $exe.old-1.0.0-old to $exe*"
            ($r.steps -join "`n") | Should -BeLike '*mark release 2.0.0-new failed*'
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'refuses <Name>, changing nothing' -TestCases @(
            @{ Name = 'a release the ledger does not know'; Extra = @{ ReleaseId = '0.9.0-gone' }; Message = '*has no release 0.9.0-gone*' }
            @{ Name = 'src'; Extra = @{ Src = 'C:\x.exe' }; Message = '*not used by operation=rollback*' }
            @{ Name = 'a checksum other than the ledger''s'; Extra = @{ Checksum = 'sha256:' + ('0' * 64) }; Message = '*but the ledger*records*' }
            @{ Name = 'a tampered copy'; Tamper = $true; Extra = @{}; Message = '*kept copy*has sha256*the copy was changed or replaced*'; Step = 'verify' }
            @{ Name = 'a tampered copy in check mode'; Tamper = $true; Extra = @{ CheckMode = $true }; Message = '*the copy was changed or replaced*' }
            @{ Name = 'a missing kept copy'; Remove = $true; Extra = @{}; Message = '*no kept copy*' }
            @{ Name = 'a missing service'; Missing = $true; Extra = @{}; Message = "*no Windows service named 'app'*" }
            @{ Name = 'a held lock in check mode'; Lock = $true; Extra = @{ CheckMode = $true }; Message = "*held by 'the other deploy'*" }
            @{ Name = 'a held lock'; Lock = $true; Extra = @{}; Message = "*held by 'the other deploy'*" }
            @{ Name = 'an empty service'; Extra = @{ Service = '' }; Message = '*service option is empty*' }
        ) {
            param ($Name, $Extra, $Message, $Step, $Tamper, $Remove, $Missing, $Lock)
            if ($Tamper) {
                [System.IO.File]::WriteAllBytes("$exe.old-1.0.0-old", (New-PeBytes -Payload 'someone else'))
            }
            if ($Remove) {
                Remove-Item -LiteralPath "$exe.old-1.0.0-old"
            }
            if ($Missing) {
                $state.Missing = $true
            }
            if ($Lock) {
                Enter-SwapLock -Path ([System.IO.Path]::Combine($dir, '.hotswap', 'lock')) -Owner 'the other deploy'
            }
            $before = Get-DirListing -Dir $dir
            $r = Invoke-TestRollback -Extra $Extra
            $r.failed | Should -BeTrue
            $r.msg | Should -BeLike $Message
            $r.changed | Should -BeFalse
            $r.swapped | Should -BeFalse
            if ($Step) {
                $r.failed_step | Should -Be $Step
            }
            @($state.Events).Count | Should -Be 0
            Get-DirListing -Dir $dir | Should -Be $before
        }

        It 'puts the exe it came from back when the target does not start' {
            $state.FailStartSha = $oldSha
            $r = Invoke-TestRollback
            $r.failed | Should -BeTrue
            $r.failed_step | Should -Be 'start'
            $r.restored | Should -BeTrue
            $r.current_release | Should -Be '2.0.0-new'
            $r.failed_path | Should -Be "$exe.failed-1.0.0-old"
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes($exe)) | Should -Be $newSha
            Get-BytesSha256 ([System.IO.File]::ReadAllBytes("$exe.failed-1.0.0-old")) | Should -Be $oldSha
            @($state.Events) | Should -Be @('stop', 'start:1.0.0', 'stop', 'start:2.0.0')
            $ledger = Read-SwapLedger -Path $ledgerPath
            $ledger['releases']['1.0.0-old']['state'] | Should -Be 'failed'
            $ledger['releases']['2.0.0-new']['state'] | Should -Be 'active'
            # the failed copy still counts as kept: a named rollback can try it again
            $q = Invoke-TestRollback -Extra @{ Operation = 'query'; ReleaseId = $null }
            ($q.releases | Where-Object { $_['release_id'] -eq '1.0.0-old' })['path'] | Should -Be "$exe.failed-1.0.0-old"
        }
    }
}
