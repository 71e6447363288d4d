from aicd.cli import main

main()
