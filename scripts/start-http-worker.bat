@echo off
REM Start a Taskpost HTTP remote worker on Windows. Reads .env (current folder, else the
REM repository root; copy configs\http-worker.env.example to .env), checks that the coordinator
REM answers /health and takes the key for an agent (exit 2 with one line saying why not), then
REM runs scripts\start_http_remote_worker.py with every argument:
REM   scripts\start-http-worker.bat --worker-type cpu --max-concurrent 2
REM To start without the check, run the Python script itself.
setlocal EnableExtensions

set "SCRIPT_DIR=%~dp0"
for %%I in ("%SCRIPT_DIR%..") do set "REPO_ROOT=%%~fI"

set "ENV_FILE="
if exist ".env" (
    set "ENV_FILE=.env"
) else if exist "%REPO_ROOT%\.env" (
    set "ENV_FILE=%REPO_ROOT%\.env"
)
if defined ENV_FILE (
    echo Loading settings from %ENV_FILE%
    for /f "usebackq eol=# tokens=1,* delims==" %%A in ("%ENV_FILE%") do (
        if not "%%A"=="" set "%%A=%%B"
    )
)

if not defined PYTHON (
    where py >nul 2>nul && (set "PYTHON=py -3") || (set "PYTHON=python")
)
%PYTHON% -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)" >nul 2>nul
if errorlevel 1 (
    echo error: Python 3.11+ not found ^(set PYTHON=C:\path\to\python.exe^) 1>&2
    exit /b 1
)

%PYTHON% "%SCRIPT_DIR%start_http_remote_worker.py" --check %*
if errorlevel 1 exit /b %ERRORLEVEL%

%PYTHON% "%SCRIPT_DIR%start_http_remote_worker.py" %*
exit /b %ERRORLEVEL%
