"""Reports: run or sweep dirs → pandas → paper-style tables (markdown / LaTeX / CSV) and plots."""
