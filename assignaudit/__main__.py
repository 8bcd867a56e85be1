from assignaudit.cli import main

main()
